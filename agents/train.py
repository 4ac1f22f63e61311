"""``python -m fernn.agents.train [flags]``: the ``fernn-rl train`` command as a module, which is what
``torchrun`` launches for multi-GPU (DDP) training::

    torchrun --nproc_per_node=4 -m fernn.agents.train --preset table1-translation-fernn-v2
"""

import typer

from fernn.agents.cli import train

if __name__ == "__main__":
    typer.run(train)
