"""``dsig explain``: one file's signatures, step by step, as a typed object the CLI renders.

The verdict comes from :func:`dsig.operations.verifier.verify_dataset` itself, so an explanation can
never disagree with ``dsig verify``; this package only adds what the verifier does not keep
(per-element stream entries, digests, the trust steps and the step that decided).
"""

from dsig.explain.build import ExplainOptions, explain_dataset, explain_file
from dsig.explain.html import render_html
from dsig.explain.model import (
    ElementNode,
    Explanation,
    SignatureExplanation,
    Step,
    StepStatus,
    StreamEntry,
    UncoveredElement,
)
from dsig.explain.render import outline

__all__ = [
    "ElementNode",
    "ExplainOptions",
    "Explanation",
    "SignatureExplanation",
    "Step",
    "StepStatus",
    "StreamEntry",
    "UncoveredElement",
    "explain_dataset",
    "explain_file",
    "outline",
    "render_html",
]
