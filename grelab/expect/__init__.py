"""Expectations on captures: templates with don't-care fields at any depth, counts, order, silence."""
from grelab.expect.expect import expect, expect_none
from grelab.expect.match import Difference, Template, is_noise

__all__ = ["expect", "expect_none", "Difference", "Template", "is_noise"]
