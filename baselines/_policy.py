"""Policy adapters: every registered rule is also a policy of the same name (``byz-gym run
--policy krum --policy-kwargs '{"f": 15}'``)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from baselines._common import GARS
from byz_gym.policy import Decision, Policy, RoundInput, register_policy

__all__ = ["GARPolicy", "register_gar_policies"]


class GARPolicy(Policy):
    """Drives the env with an aggregation rule: linear rules return their credit (``step_credit``),
    non-linear ones their update (``step_update``).

    The rule is built in ``reset`` for the env's ``n_workers``; ``f`` defaults to the scenario's
    number of Byzantine workers. An infeasible ``(n, f)`` raises ``ValueError`` there with the
    largest ``f`` the rule accepts. Linear rules also offer an SB3-style ``predict`` for envs built
    with ``action_mode="simplex"``: bind the env first (``reset`` does it, or ``bind(env)``), since
    a rule needs the round's gradients, which the observation does not contain.
    """

    rule_name: ClassVar[str] = ""

    def __init__(self, *, f: int | None = None, pre: Sequence[Any] = (), **params: Any) -> None:
        from baselines import make  # late: baselines/__init__ imports this module

        self.f, self.pre, self.params = f, list(pre), dict(params)
        make(self.rule_name, f=0 if f is None else f, pre=self.pre, **self.params)  # check knobs early
        self.rule: Any = None
        self._envs: list[Any] = []

    def reset(self, env: Any, seed: int) -> None:
        from baselines import make

        n = int(env.n_workers)
        byzantine = int(env.scenario.n_byzantine)
        f = byzantine if self.f is None else self.f
        try:
            self.rule = make(self.rule_name, n=n, f=f, pre=self.pre, **self.params)
        except ValueError as error:
            largest = GARS.get(self.rule_name).max_f(n) if not self.pre else None
            hint = f"; e.g. --policy-kwargs '{{\"f\": {largest}}}'" if largest is not None and largest >= 0 else ""
            given = "given" if self.f is not None else f"defaulted to the scenario's {byzantine} Byzantine workers"
            raise ValueError(f"policy {self.name!r} with n={n} workers and f={f} ({given}): {error}{hint}") from None
        self.rule.reset(seed)
        self.bind(env)

    def act(self, round_input: RoundInput) -> Decision:
        if self.rule is None:
            raise RuntimeError(f"policy {self.name!r}: call reset(env, seed) before act()")
        result = self.rule.aggregate(round_input.submissions)
        if result.credit is not None:
            return Decision(credit=result.credit.detach().cpu().to(torch.float64).numpy())
        return Decision(update=result.update)

    # -- SB3-style interface -----------------------------------------------------------------------
    def bind(self, env: Any) -> None:
        """Attach an env (or a ``DummyVecEnv``) whose round gradients ``predict`` will read."""
        envs = getattr(env, "envs", None)
        self._envs = [e.unwrapped for e in envs] if envs is not None else [getattr(env, "unwrapped", env)]
        if self.rule is None:
            self.reset_rule(self._envs[0])

    def reset_rule(self, env: Any) -> None:
        """Build the rule for ``env`` (its ``n_workers``; ``f`` as in ``reset``) without reseeding."""
        from baselines import make

        f = int(env.scenario.n_byzantine) if self.f is None else self.f
        self.rule = make(self.rule_name, n=int(env.n_workers), f=f, pre=self.pre, **self.params)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """``(action, None)`` as in Stable-Baselines3: the rule's credit as a simplex action for
        each bound env. Needs ``bind(env)`` (or ``reset``) and ``action_mode="simplex"``."""
        if not self._envs:
            raise RuntimeError(
                f"policy {self.name!r}: bind(env) before predict(); the rule reads the round's gradients"
            )
        if not self.rule.linear:
            raise ValueError(
                f"policy {self.name!r} is a non-linear rule and has no credit to act with; "
                "run it with byz_gym.experiments.run_episode, which steps with its update"
            )
        actions = []
        for env in self._envs:
            if getattr(env, "action_mode", "simplex") != "simplex":
                raise ValueError(
                    f"policy {self.name!r}: predict returns credit, which needs an env made with "
                    f"action_mode='simplex' (got {env.action_mode!r}); a softmax action cannot give exact zeros"
                )
            credit = self.rule.aggregate(env.submissions).credit
            actions.append(credit.detach().cpu().numpy().astype(np.float32))
        batched = np.asarray(observation).ndim > 1
        if batched:
            return np.stack(actions), None
        return actions[0], None


def register_gar_policies() -> None:
    """Register one ``GARPolicy`` subclass per rule in ``GARS`` (idempotent)."""
    from byz_gym.policy import POLICIES

    for key in GARS.names():
        if key in POLICIES:
            continue
        rule = GARS.get(key)
        cls = type(
            f"{rule.__name__}Policy",
            (GARPolicy,),
            {
                "name": key,
                "rule_name": key,
                "__doc__": f"Policy adapter of the ``{key}`` rule ({rule.__name__}); see ``baselines.{rule.__name__}``.",
                "__module__": __name__,
            },
        )
        cls.__signature__ = _policy_signature(rule)  # type: ignore[attr-defined]
        globals()[cls.__name__] = cls  # a module attribute, so policies pickle (process pools)
        register_policy(key)(cls)


def _policy_signature(rule: type) -> inspect.Signature:
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter("f", keyword, default=None, annotation="int | None"),
        inspect.Parameter("pre", keyword, default=(), annotation="Sequence[str | dict]"),
    ]
    for p in inspect.signature(rule).parameters.values():
        if p.name in ("self", "f", "n") or p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            continue
        params.append(p.replace(kind=keyword))
    return inspect.Signature(params)
