"""Pictures of the computation graph and of the chain rule at work.

- `draw_graph(root)`: a graphviz picture of every node reachable from `root`, with values,
  gradients and the local derivative d(out)/d(in) on each edge.
- `chain_rule(output, wrt)`: d(output)/d(wrt) written as the sum over paths of products of
  named local derivatives, each evaluated.
- `backward_steps(root)`: backpropagation one node at a time, as text and pictures.
- `gradient_flow(model)`: per-layer gradient norms over training, plotted (matplotlib).

None of them changes the graph, its saved buffers or any `.grad`: derivatives are
recomputed on the side from each op's vjp. This module imports graphviz; the engine never
imports this module (`autodiff.draw_graph` loads it on first use).
"""


from .chain import ChainRule, chain_rule
from .draw import DotNotFoundError, Graph, draw_graph
from .flow import GradientFlow, gradient_flow
from .steps import Step, backward_steps

__all__ = ["draw_graph", "chain_rule", "backward_steps", "gradient_flow", "ChainRule", "Step",
           "Graph", "GradientFlow", "DotNotFoundError"]
