"""The solvers, one module each: sgd (minibatch), lbfgs and newton_cg (full batch), registered in
OPTIMIZERS by name. A new solver is one module here and its import below (base.py: the contract)."""

from .base import OPTIMIZERS, FullBatchSolver, Optimizer, refused_options, register, solver_options
from .sgd import SGD                     # registered first: the default, listed first by --solver
from .lbfgs import LBFGS
from .newton_cg import NewtonCG
from .schedules import SCHEDULES, LRSchedule

__all__ = ["OPTIMIZERS", "Optimizer", "FullBatchSolver", "register", "solver_options", "refused_options",
           "SGD", "LBFGS", "NewtonCG", "LRSchedule", "SCHEDULES"]
