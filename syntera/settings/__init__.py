"""Settings, split by topic; every value is driven by an environment variable.

`.env.example` lists each variable with a comment. `syntera.settings.production` flips
the secure defaults on for deployments and `manage.py check --deploy`.
"""

from .agents import *  # noqa: F403
from .api import *  # noqa: F403
from .base import *  # noqa: F403
from .celery import *  # noqa: F403
from .channels import *  # noqa: F403
from .conversations import *  # noqa: F403
from .database import *  # noqa: F403
from .events import *  # noqa: F403
from .keys import *  # noqa: F403
from .knowledge import *  # noqa: F403
from .llm import *  # noqa: F403
from .observability import *  # noqa: F403
from .outbound import *  # noqa: F403
from .redis import *  # noqa: F403
from .security import *  # noqa: F403
from .tenancy import *  # noqa: F403
