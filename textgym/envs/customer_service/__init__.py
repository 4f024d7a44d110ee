"""CustomerService: find a customer's hidden intent, collect its slots, act by the policy
(the task, its scripted customer, its actions)."""

from __future__ import annotations

from textgym.envs.customer_service.actions import Action, parse_action
from textgym.envs.customer_service.customer import ScriptedCustomer
from textgym.envs.customer_service.task import CustomerServiceTask, customer_service_reward

__all__ = [
    "Action",
    "CustomerServiceTask",
    "ScriptedCustomer",
    "customer_service_reward",
    "parse_action",
]
