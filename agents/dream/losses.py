"""One actor-critic update on imagined trajectories (DreamerV3's recipe, as the package docstring states it):
the lambda-returns, the return scale, REINFORCE with an entropy bonus and the critic's regression."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from fernn.imagination import WorldModelProtocol
from fernn.agents.dream.config import DreamConfig
from fernn.agents.dream.networks import ImaginationActorCritic

if TYPE_CHECKING:
    from fernn.agents.dream.loop import StartStates

def lambda_returns(rewards: torch.Tensor, values: torch.Tensor, gamma: float, lambda_: float) -> torch.Tensor:
    """``(B, H)`` λ-returns of rewards ``(B, H)`` (``rewards[:, k]`` follows the action at ``k``) and values
    ``(B, H + 1)`` (the last bootstraps)."""
    returns, following = [], values[:, -1]
    for k in reversed(range(rewards.shape[1])):
        following = rewards[:, k] + gamma * ((1 - lambda_) * values[:, k + 1] + lambda_ * following)
        returns.append(following)
    return torch.stack(returns[::-1], 1)


def imagination_update(config: DreamConfig, world_model: WorldModelProtocol, agent: ImaginationActorCritic,
                       optimizer: torch.optim.Optimizer, starts: StartStates, reward, table: torch.Tensor,
                       generator: torch.Generator, state: dict[str, Any], window: dict[str, float],
                       device: torch.device) -> None:
    """One actor-critic update on ``batch_size`` imagined trajectories (the package docstring's recipe); adds the
    update's figures to ``window`` and advances ``state`` (update count, return scale)."""
    start = starts.sample(config.batch_size)
    with torch.no_grad():  # the world model imagines; the actor acts by sampling
        path, actions, rewards = [start], [], []
        for _ in range(config.horizon):
            logits = agent.logits(path[-1])
            action = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)
            prediction, following = world_model.imagine_step(path[-1], table[action])
            actions.append(action)
            rewards.append(reward(prediction))
            path.append(following)
    states = torch.stack(path, 1)  # (B, H + 1, *state)
    taken, earned = torch.stack(actions, 1), torch.stack(rewards, 1)
    values = agent.value(states.flatten(0, 1)).view(config.batch_size, config.horizon + 1)
    returns = lambda_returns(earned, values.detach(), config.gamma, config.lambda_)
    spread = float(torch.quantile(returns, 0.95) - torch.quantile(returns, 0.05))
    state["scale"] = 0.99 * state["scale"] + 0.01 * spread if state["update"] else spread
    scale = max(1.0, state["scale"])
    logits = agent.logits(states[:, :-1].flatten(0, 1)).view(config.batch_size, config.horizon, -1)
    log_probs = logits.log_softmax(-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    advantage = (returns - values[:, :-1]).detach() / scale
    actor_loss = -(advantage * log_probs.gather(-1, taken[..., None]).squeeze(-1)).mean() - \
        config.entropy * entropy.mean()
    critic_loss = 0.5 * F.mse_loss(values[:, :-1], returns)
    optimizer.zero_grad(set_to_none=True)
    (actor_loss + critic_loss).backward()
    nn.utils.clip_grad_norm_(agent.parameters(), 100.0)
    optimizer.step()
    state["update"] += 1
    for key, value in (("return", earned.sum(1).mean()), ("actor", actor_loss), ("critic", critic_loss),
                       ("entropy", entropy.mean())):
        window[key] += float(value.detach())
    window["count"] += 1
