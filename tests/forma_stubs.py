"""Stand-ins for the forma-* connectors (being written elsewhere), under their type names and
with the settings `iotask docebo import-tasks` gives them: enough to create their connections.

Registered by inserting core_connector rows, one per class of this module.
"""

from iotask.connectors.base import Connector
from iotask.connectors.settings import Setting


def _settings(*removals: str) -> tuple[Setting, ...]:
    return (Setting("database", "url", required=True),
            Setting("prefix"),
            Setting("remove", choices=removals))


class FormaUsers(Connector):
    type_name = "forma-users"
    can_read = can_write = True
    settings = _settings("suspend", "delete")


class FormaOrgchart(Connector):
    type_name = "forma-orgchart"
    can_write = True
    settings = _settings()


class FormaCourses(Connector):
    type_name = "forma-courses"
    can_write = True
    settings = _settings("status0", "delete")


class FormaEnrollments(Connector):
    type_name = "forma-enrollments"
    can_read = can_write = True
    settings = _settings("suspend", "unsubscribe")


CLASSES = (FormaUsers, FormaOrgchart, FormaCourses, FormaEnrollments)
CONNECTOR = FormaUsers
