"""The release policy: YAML validated by a JSON schema, requirements per risk class and stage, rules."""

from mlgate.policy.loader import Approvals, Policy, Requirements, Threshold, load_policy, parse_policy

__all__ = ["Approvals", "Policy", "Requirements", "Threshold", "load_policy", "parse_policy"]
