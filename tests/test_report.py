"""`softmaxreg report`: one self-contained report.html, rendered in headless Chromium; and the
evaluation.json that `evaluate` leaves for it."""

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from softmaxreg.cli import main

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install "
                                                             "chromium); the report is not rendered")
# Added to a copy of the report (never to the report itself): once the page has loaded, every image
# writes its decoded width into the DOM, which --dump-dom then prints.
PROBE = ("<script>addEventListener('load', () => { for (const img of document.images) "
         "img.setAttribute('data-natural-width', img.naturalWidth); "
         "document.body.setAttribute('data-images', document.images.length); });</script>")


class Page(HTMLParser):
    """The text and the <img> attributes of an HTML document."""

    def __init__(self, text: str):
        super().__init__()
        self.images, self.text, self.skip = [], [], False
        self.feed(text)
        self.text = " ".join(" ".join(self.text).split())

    def handle_starttag(self, tag, attrs):
        self.skip = tag in ("style", "script")
        if tag == "img":
            self.images.append(dict(attrs))

    def handle_data(self, data):
        if not self.skip:
            self.text.append(data)


def render(report, tmp_path) -> Page:
    """The DOM of `report` after Chromium has loaded it (its images decoded)."""
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    result = subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
                             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom",
                             probed.as_uri()], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "data-images=" in result.stdout, "the page's load event never ran"
    return Page(result.stdout)


@pytest.fixture(scope="module")
def run(digits_dir, tmp_path_factory):
    """A short run on the digits, with its figures."""
    folder = tmp_path_factory.mktemp("report") / "run"
    assert main(["train", "--data-dir", str(digits_dir), "--out", str(folder), "--epochs", "4", "--batch-size", "64",
                 "--lr", "0.5", "--quiet"]) == 0
    return folder


def test_evaluate_leaves_its_figures_in_evaluation_json(run, digits_dir, capsys):
    assert main(["evaluate", str(run / "model.safetensors"), "--data-dir", str(digits_dir), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((run / "evaluation.json").read_text())
    assert {k: saved[k] for k in printed} == printed
    assert saved["data"] == str(digits_dir) and saved["split"] == "test" and len(saved["model_sha256"]) == 64
    assert not list(run.glob(".evaluation.json.*"))                      # written atomically, nothing left over


def test_evaluate_prints_whole_class_names(reference_model, tmp_path, capsys):
    assert main(["evaluate", str(reference_model), "--out", str(tmp_path)]) == 0
    confusion = capsys.readouterr().out.split("confusion matrix")[1]
    assert confusion.count("t-shirt/top") == 2 and "t-shirt/to " not in confusion
    assert (tmp_path / "evaluation.json").is_file()


@needs_chromium
def test_the_report_renders_with_every_image_decoded(run, digits_dir, tmp_path, capsys):
    assert main(["evaluate", str(run / "model.safetensors"), "--data-dir", str(digits_dir)]) == 0
    capsys.readouterr()
    assert main(["report", str(run)]) == 0
    assert capsys.readouterr().out == f"wrote {run / 'report.html'}\n"
    source = (run / "report.html").read_text()
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r"src='([^']*)'", source))
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", source)         # nothing to fetch
    page = render(run / "report.html", tmp_path)
    assert [img["alt"] for img in page.images] == ["Loss and accuracy per epoch",
                                                    "Misclassified validation images, true label over predicted",
                                                    "Confusion matrix", "Reliability diagram"]
    widths = [int(img["data-natural-width"]) for img in page.images]
    assert all(w > 300 for w in widths), widths                              # each one decoded
    evaluation = json.loads((run / "evaluation.json").read_text())
    metrics = (run / "metrics.csv").read_text().splitlines()
    for text in ("Settings", "batch_size 64", "lr 0.5", "Data", str(digits_dir), "training images 1500",
                 "t10k-images-idx3-ubyte", json.loads((run / "config.json").read_text())["dataset"]["sha256"],
                 "Training", "Per class", "Confusion matrix", "true \\ predicted", "Calibration",
                 f"accuracy {evaluation['accuracy']:.4f}",
                 f"expected calibration error {evaluation['expected_calibration_error']:.4f}"):
        assert text in page.text, text
    for line in metrics[1:]:                                                  # the per-epoch table, every row
        epoch, *figures = line.split(",")
        assert f"{epoch} " + " ".join(f"{float(v):.4f}" for v in figures) in page.text
    assert "another model" not in page.text and "Not evaluated" not in page.text


@needs_chromium
def test_a_run_not_evaluated_yet_says_how_and_a_stale_evaluation_is_flagged(digits_dir, tmp_path, capsys):
    folder = tmp_path / "run"
    args = ["train", "--data-dir", str(digits_dir), "--out", str(folder), "--epochs", "1", "--quiet", "--no-plots"]
    assert main(args) == 0
    assert main(["report", str(folder), "--out", str(tmp_path / "elsewhere")]) == 0
    assert not (folder / "report.html").exists()
    page = render(tmp_path / "elsewhere" / "report.html", tmp_path)
    assert page.images == [] and "curves.png is not in the run folder" in page.text
    assert f"Not evaluated yet: run softmaxreg evaluate {folder / 'model.safetensors'}" in page.text
    assert main(["evaluate", str(folder / "model.safetensors"), "--data-dir", str(digits_dir)]) == 0
    assert main(args + ["--seed", "1", "--overwrite"]) == 0                  # a new model, the old evaluation
    assert main(["report", str(folder)]) == 0
    assert "This evaluation is of another model" in render(folder / "report.html", tmp_path).text
    capsys.readouterr()


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "not a run folder (no config.json"),
    (lambda d: (d / "config.json").write_text("{not json"), "config.json: run config is not valid JSON"),
    (lambda d: ((d / "config.json").write_text("{}"), (d / "metrics.csv").write_text("epoch,val_acc\n1,0.5\n")),
     "metrics.csv: not a metrics table (expected the columns epoch,train_loss"),
    (lambda d: ((d / "config.json").write_text("{}"), (d / "evaluation.json").write_text('{"accuracy": 1}'),
                (d / "metrics.csv").write_text("epoch,train_loss,train_acc,val_loss,val_acc\n1,1,0.5,1,0.5\n")),
     "evaluation.json: not written by softmaxreg"),
    (lambda d: ((d / "config.json").write_text("{\"settings\": 5}"),
                (d / "metrics.csv").write_text("epoch,train_loss,train_acc,val_loss,val_acc\n")),
     "config.json: not written by softmaxreg"),
])
def test_a_folder_that_is_no_run_is_one_line_and_exit_2(setup, message, tmp_path, capsys):
    setup(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "report.html").exists()
