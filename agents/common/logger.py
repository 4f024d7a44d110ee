"""The one logger of every agent, :class:`textgym.progress.Logger` (re-exported here).

It moved to :mod:`textgym.progress` so that reward-model training, which lives in the env
package, writes the same progress log as the agents do.
"""

from __future__ import annotations

from textgym.progress import PROGRESS_NAME, Logger, read_log

__all__ = ["PROGRESS_NAME", "Logger", "read_log"]
