"""A connector as a third party would ship it: registered with `iotask connector register`."""

from iotask.connectors.base import Connector
from iotask.connectors.settings import Setting


class LdapDirectory(Connector):
    type_name = "ldap-directory"
    description = "Users from an LDAP directory (test plug-in)"
    can_read = True
    settings = (
        Setting("server", "url", required=True),
        Setting("bind_password", secret=True, required=True),
        Setting("page_size", "int", default=500),
        Setting("follow_referrals", "bool", default=False),
    )


CONNECTOR = LdapDirectory
