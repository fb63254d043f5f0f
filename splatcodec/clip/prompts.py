"""Prompt templates that turn class names into sentences for the text tower.

Zero-shot classification embeds every class name in every template and averages the normalised text
embeddings per class; class-label training draws one template per class and step (text-side
augmentation). A template holds ``{}`` once, where the class name goes.
"""
from __future__ import annotations

import os
from typing import Sequence

from .errors import ClipInputError

#: Default templates: short photo descriptions that suit small natural-image datasets such as CIFAR-10.
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a low resolution photo of a {}.",
    "a close-up photo of a {}.",
    "a photo of the small {}.",
    "a photo of the big {}.",
    "a cropped photo of a {}.",
    "a bright photo of a {}.",
)


def class_label(name: str) -> str:
    """A folder name as words: ``"sea_lion"`` -> ``"sea lion"``."""
    return name.replace("_", " ").replace("-", " ").strip()


def check_templates(templates: Sequence[str]) -> list[str]:
    """The templates as a list, each checked to hold exactly one ``{}``."""
    out = [str(t) for t in templates]
    if not out:
        raise ClipInputError("at least one prompt template is needed")
    for template in out:
        if template.count("{}") != 1:
            raise ClipInputError(f"a prompt template must contain '{{}}' exactly once: {template!r}")
    return out


def load_templates(path: str | os.PathLike | None) -> list[str]:
    """Templates from a text file (one per line, blank lines and ``#`` comments ignored), or the defaults."""
    if path is None:
        return list(DEFAULT_TEMPLATES)
    try:
        with open(path, encoding="utf-8") as fh:
            lines = [line.strip() for line in fh]
    except OSError as exc:
        raise ClipInputError(f"{path}: cannot read prompt templates: {exc.strerror or exc}") from None
    return check_templates([line for line in lines if line and not line.startswith("#")])


def prompts(classnames: Sequence[str], templates: Sequence[str]) -> list[list[str]]:
    """``prompts[c][t]``: class ``c``'s name in template ``t``."""
    templates = check_templates(templates)
    return [[t.format(class_label(name)) for t in templates] for name in classnames]
