"""CustomerService, re-exported from its family folder :mod:`textgym.envs.customer_service`
(an older public path)."""

from __future__ import annotations

from textgym.envs.customer_service.actions import (
    ACTIONS,
    INTENTS,
    SLOTS,
    Action,
    gold_action,
    parse_action,
)
from textgym.envs.customer_service.task import (
    CustomerServiceTask,
    PolicyCompliance,
    Resolution,
    TurnEfficiency,
    customer_service_reward,
    detect_intent,
)

__all__ = [
    "ACTIONS",
    "INTENTS",
    "SLOTS",
    "Action",
    "CustomerServiceTask",
    "PolicyCompliance",
    "Resolution",
    "TurnEfficiency",
    "customer_service_reward",
    "detect_intent",
    "gold_action",
    "parse_action",
]
