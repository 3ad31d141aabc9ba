"""Exceptions the library raises for user mistakes (all standard exception subclasses)."""


class ShapeError(ValueError):
    """Operands whose shapes do not fit the operation (broadcasting, matmul, axes...)."""


class GradcheckError(RuntimeError):
    """Analytic and numerical gradients disagree."""


class CompileError(RuntimeError):
    """A step that `autodiff.compile` cannot replay faithfully."""
