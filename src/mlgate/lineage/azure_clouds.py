"""Which Azure cloud an Azure ML workspace is in: its token scope, sign-in authority and storage suffix.

The ``azureml-mlflow`` plugin asks for a token for ``<resource manager>/.default`` of the workspace's
cloud and signs in at that cloud's authority; it picks the cloud by the ``AZUREML_CURRENT_CLOUD``
variable (``AzureCloud``, ``AzureChinaCloud``, ``AzureUSGovernment``). mlgate does the same, and
when the variable is unset it reads the cloud from the tracking host Microsoft gives each cloud's
regional Azure ML API (``<region>.api.azureml.ms``, ``<region>.api.ml.azure.cn``,
``<region>.api.ml.azure.us``; private-link hosts end the same way), else the public cloud (the
plugin's own default). Only this cloud's blob hosts may serve an Azure ML SAS URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mlgate.errors import UsageError

CLOUD_VARIABLE = "AZUREML_CURRENT_CLOUD"


@dataclass(frozen=True)
class Cloud:
    name: str  # as AZUREML_CURRENT_CLOUD names it
    resource_manager: str
    authority: str  # the sign-in host (AZURE_AUTHORITY_HOST)
    storage_suffix: str  # <account>.blob.<storage_suffix>
    ml_suffix: str  # <region>.<ml_suffix>

    @property
    def scope(self) -> str:
        """The token scope the plugin asks for: ``<resource manager>/.default``."""
        return f"{self.resource_manager}/.default"


PUBLIC = Cloud("AzureCloud", "https://management.azure.com", "login.microsoftonline.com", "core.windows.net",
               "api.azureml.ms")
CLOUDS = (
    PUBLIC,
    Cloud("AzureChinaCloud", "https://management.chinacloudapi.cn", "login.chinacloudapi.cn",
          "core.chinacloudapi.cn", "api.ml.azure.cn"),
    Cloud("AzureUSGovernment", "https://management.usgovcloudapi.net", "login.microsoftonline.us",
          "core.usgovcloudapi.net", "api.ml.azure.us"),
)


def cloud_for(host: str, env: Mapping[str, str]) -> Cloud:
    """The cloud of a workspace whose tracking host is ``host`` (``AZUREML_CURRENT_CLOUD`` first)."""
    named = (env.get(CLOUD_VARIABLE) or "").strip()
    if named:
        for cloud in CLOUDS:
            if cloud.name.lower() == named.lower():
                return cloud
        raise UsageError(f"{CLOUD_VARIABLE} names no Azure cloud mlgate knows: {named[:40]!r}",
                         hint="use " + ", ".join(c.name for c in CLOUDS) + " (or unset it)")
    host = host.lower().rstrip(".")
    for cloud in CLOUDS:
        if host == cloud.ml_suffix or host.endswith("." + cloud.ml_suffix):
            return cloud
    return PUBLIC
