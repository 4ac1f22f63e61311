"""``python -m fernn.agents.cli``: the ``fernn-rl`` command, also what ``torchrun`` launches for multi-GPU
(DDP) training::

    torchrun --nproc_per_node=4 -m fernn.agents.cli train --preset table1-translation-fernn-v2
"""

from fernn.agents.cli import app

app(prog_name="fernn-rl")
