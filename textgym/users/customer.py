"""ScriptedCustomer, re-exported from the CustomerService family,
:mod:`textgym.envs.customer_service.customer` (an older public path)."""

from __future__ import annotations

from textgym.envs.customer_service.customer import ScriptedCustomer, customer_lines

__all__ = ["ScriptedCustomer", "customer_lines"]
