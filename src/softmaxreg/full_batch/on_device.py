"""F over all rows of another array library's arrays, on their device (the array API path)."""

from __future__ import annotations

import contextlib

from .. import generic
from ..engines import engine_for
from ..engines.array_api import device_of, to_numpy
from ..objective import SoftmaxCrossEntropy, hessian_value, set_flat_params, split_flat
from ..preconditioner import gram_preconditioner, input_map

__all__ = ["GenericFullBatch"]


class GenericFullBatch:
    """FullBatch's contract (fun(x) -> (F, dF, (mean training loss, accuracy)), `preconditioner`,
    a context manager) for arrays of any array API library: x, dF and the sums are float64 arrays
    on the data's device, the chunks run in order in one thread (the device runs them in parallel),
    nothing is updated in place. F is a Python float: one synchronisation per evaluation."""

    def __init__(self, objective: SoftmaxCrossEntropy, X, y, w=None, *, divisor: float | None = None):
        self.objective, self.X, self.y, self.w = objective, X, y, w
        self.xp, self.n = engine_for(X).xp, X.shape[0]
        if divisor is None:
            divisor = float(self.xp.sum(self.xp.astype(w, self.xp.float64))) if w is not None else float(self.n)
        self.divisor = float(divisor)

    def __enter__(self) -> "GenericFullBatch":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def solving(self):
        """FullBatch.solving's context: nothing here (the library's own threads are left as they are)."""
        return contextlib.nullcontext()

    def preconditioner(self):
        """FullBatch.preconditioner's P, its Gram matrix summed on the device (None without xp.linalg)."""
        xp, model = self.xp, self.objective.model
        a, shift, r = (xp.asarray(v, device=device_of(self.X)) for v in input_map(model))
        xx, x_sum = 0.0, 0.0
        for start, x in self.objective.model._generic_chunks(self.X):
            xc = x - shift
            wx = xc if self.w is None else xc * self.w[start:start + x.shape[0], None]
            xx = xx + xp.astype(wx.T @ xc, xp.float64)
            x_sum = x_sum + xp.sum(xp.astype(wx, xp.float64), axis=0)
        return gram_preconditioner(xp, xx / self.divisor, x_sum / self.divisor, a, r, model.num_outputs,
                                    self.objective.weight_decay)

    def __call__(self, x):
        xp, objective = self.xp, self.objective
        model = objective.model
        set_flat_params(model, x)
        loss, correct, gW, gb = 0.0, 0, 0.0, 0.0
        for start, xc in self.objective.model._generic_chunks(self.X):
            end = start + xc.shape[0]
            chunk_loss, chunk_correct, dW, db = objective.chunk(
                xc, self.y[start:end, ...], None if self.w is None else self.w[start:end], self.divisor)
            loss, correct = loss + xp.astype(chunk_loss, xp.float64), correct + chunk_correct
            gW, gb = gW + xp.astype(dW, xp.float64), gb + xp.astype(db, xp.float64)
        data_loss = float(loss) / self.divisor
        penalty, gW = objective.penalized(gW)
        g = xp.concat([xp.reshape(gW, (-1,)), gb])
        return data_loss + penalty, g, (data_loss, int(correct) / self.n)

    def hessian_product(self, x, v):
        """FullBatch.hessian_product on the device: H v at the flat point x, one pass over the chunks."""
        xp, objective = self.xp, self.objective
        model = objective.model
        set_flat_params(model, x)
        VW, Vb = split_flat(model, v)
        product = generic.compiled(generic.hessian_product_sums, xp)
        HW, Hb = 0.0, 0.0
        for start, xc in model._generic_chunks(self.X):
            end = start + xc.shape[0]
            dW, db = product(xp, model, VW, Vb, xc, self.y[start:end, ...],
                             None if self.w is None else self.w[start:end], self.divisor)
            HW, Hb = HW + xp.astype(dW, xp.float64), Hb + xp.astype(db, xp.float64)
        return hessian_value(objective, xp.concat([xp.reshape(HW, (-1,)), Hb]), v)

    def class_curvature(self, x):
        """FullBatch.class_curvature on the device: A (k, k) float64 on the host."""
        xp, model = self.xp, self.objective.model
        set_flat_params(model, x)
        total = 0.0
        for start, xc in model._generic_chunks(self.X):
            end = start + xc.shape[0]
            total = total + xp.astype(generic.class_curvature_sums(
                xp, model, xc, self.y[start:end, ...], None if self.w is None else self.w[start:end]), xp.float64)
        return to_numpy(total) / self.divisor
