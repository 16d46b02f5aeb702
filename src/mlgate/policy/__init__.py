"""The release policy: YAML validated by a JSON schema, requirements per risk class and stage, rules."""

from mlgate.policy.loader import Approvals, Bound, Policy, Requirements, Threshold, load_policy, parse_policy

__all__ = ["Approvals", "Bound", "Policy", "Requirements", "Threshold", "load_policy", "parse_policy"]
