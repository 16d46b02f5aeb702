"""The approval-check service behind `mlgate serve`.

One WSGI application (:mod:`mlgate.service.app`) that is the environment check of both CIs:
the Azure DevOps "Invoke REST API" check in callback mode
(:mod:`mlgate.service.azure_devops_check`) and the GitHub custom deployment protection rule
(:mod:`mlgate.service.github_protection_rule`). Both acknowledge at once and evaluate the
gate on a bounded background worker pool (:mod:`mlgate.service.worker`).
"""
