"""Benchmarks (``fernn-rl bench``) and the paper-style reference implementations they time.

==============  ===========================================================================
module          what lives there
==============  ===========================================================================
``models``      training-step timings: translation step, rotation step, world model
``reference``   the reference loops (roll per velocity, grid_sample per angle, per-sample world model)
``scenes``      scene-generator and env-step throughputs against frame-by-frame generation
``rl``          collection and update speed of the RL policies
==============  ===========================================================================

Every row runs in a fresh process, rounds interleave the implementations, and each row reports its
median: the machine's speed drifts, ratios measured in one run do not.
"""
