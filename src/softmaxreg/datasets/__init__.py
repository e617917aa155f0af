"""Data: the IDX reader/writer, Fashion-MNIST, the svmlight reader, the minibatch iterator, image resizing."""

from .batches import iterate_minibatches, num_batches
from .fashion_mnist import DATA_DIR_ENV, FASHION_MNIST_CLASSES, ImageDataset, load_fashion_mnist
from .idx import read_idx, write_idx
from .resize import resize_images
from .svmlight import load_svmlight

__all__ = ["read_idx", "write_idx", "load_fashion_mnist", "ImageDataset", "FASHION_MNIST_CLASSES",
           "DATA_DIR_ENV", "iterate_minibatches", "num_batches", "resize_images", "load_svmlight"]
