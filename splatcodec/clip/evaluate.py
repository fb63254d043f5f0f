"""Zero-shot classification and text<->image retrieval for RGB or Gaussian (GS) input.

* Zero-shot: every class name in every prompt template through the text tower; the normalised
  embeddings are averaged per class and normalised again; an image's prediction is the class whose
  embedding has the largest cosine with the image embedding. Reports top-1, top-5 (top-k with
  k = min(5, classes)) and per-class top-1.
* Retrieval: image->text recall@k counts an image as found when any of its captions is among the k
  texts closest to it; text->image recall@k counts a caption as found when its image is among the k
  images closest to it.
* GS input reports ``mean_bytes`` (mean real ``.gsplat`` size), ``compression`` (raw 8-bit pixel bytes,
  width x height x 3 of the image the Gaussians describe, over ``mean_bytes``), ``mean_gaussians`` and
  ``fp16_bytes`` (the paper's count: 16 bytes per Gaussian). Fit-mode Gaussians have no file, so their
  ``mean_bytes`` and ``compression`` are ``None``.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .cache import Encoded, GaussianCache, GaussianSettings, gaussians_for
from .data import Dataset, load_pixels
from .errors import ClipInputError
from .prompts import prompts


def pixels_tensor(model: Any, pixels: np.ndarray, device: Any = "cpu") -> Any:
    """uint8 [B, H, W, 3] -> the normalised float tensor the model's visual tower reads."""
    from .model import normalize_pixels

    return normalize_pixels(pixels, model.config, device)


def stem_param(model: Any) -> str:
    """The covariance parameterisation the model's splat stem was built for."""
    return model.config.stem.param


def splat_tensors(model: Any, splats: Sequence[Any], device: Any = "cpu") -> tuple[Any, Any]:
    """Splats -> (features, valid) tensors for ``model.encode_gaussians``."""
    import torch

    from .tokens import splat_features

    features, valid = splat_features(list(splats), param=stem_param(model))
    return torch.from_numpy(features).to(device), torch.from_numpy(valid).to(device)


def _batched(fn: Callable[[int, int], Any], n: int, batch_size: int) -> Any:
    import torch

    if n == 0:
        raise ClipInputError("nothing to embed: no inputs")
    return torch.cat([fn(i, min(n, i + batch_size)) for i in range(0, n, batch_size)])


def embed_pixels(model: Any, pixels: np.ndarray, batch_size: int = 256, device: Any = "cpu") -> Any:
    """L2-normalised image embeddings [N, D] (no gradients) of uint8 [N, H, W, 3] pixels."""
    import torch

    with torch.no_grad():
        return _batched(lambda a, b: model.encode_image(pixels_tensor(model, pixels[a:b], device)),
                        len(pixels), batch_size)


def embed_splats(model: Any, splats: Sequence[Any], batch_size: int = 256, device: Any = "cpu") -> Any:
    """L2-normalised GS embeddings [N, D] (no gradients) of a list of Splats."""
    import torch

    with torch.no_grad():
        return _batched(lambda a, b: model.encode_gaussians(*splat_tensors(model, splats[a:b], device)),
                        len(splats), batch_size)


def class_text_embeddings(model: Any, classnames: Sequence[str], templates: Sequence[str]) -> Any:
    """[C, D] zero-shot classifier: per class, the normalised mean of its normalised prompt embeddings."""
    import torch

    texts = prompts(classnames, templates)
    with torch.no_grad():
        flat = model.encode_text([t for per_class in texts for t in per_class])
        emb = torch.nn.functional.normalize(flat.float(), dim=-1).reshape(len(classnames), len(texts[0]), -1)
        return torch.nn.functional.normalize(emb.mean(dim=1), dim=-1)


def zeroshot_scores(image_emb: Any, class_emb: Any, labels: np.ndarray,
                    classnames: Sequence[str]) -> dict[str, Any]:
    """top1, top5 (k = min(5, C)), per-class top-1 and n from embeddings and true labels."""
    logits = (image_emb.float() @ class_emb.float().T).cpu().numpy()
    order = np.argsort(-logits, axis=1, kind="stable")
    labels = np.asarray(labels)
    top1 = order[:, 0] == labels
    k = min(5, len(classnames))
    topk = (order[:, :k] == labels[:, None]).any(axis=1)
    per_class = {name: (float(top1[labels == c].mean()) if (labels == c).any() else None)
                 for c, name in enumerate(classnames)}
    return {"top1": float(top1.mean()), "top5": float(topk.mean()), "top5_k": k, "per_class": per_class,
            "n": int(len(labels)), "classes": len(classnames), "chance_top1": 1.0 / len(classnames)}


def retrieval_scores(image_emb: Any, text_emb: Any, text_image: np.ndarray,
                     ks: Sequence[int] = (1, 5, 10)) -> dict[str, Any]:
    """Recall@k both ways; ``text_image[j]`` is the image index of caption ``j``."""
    sim = (image_emb.float() @ text_emb.float().T).cpu().numpy()  # [images, texts]
    text_image = np.asarray(text_image)
    n_img, n_txt = sim.shape
    i2t_rank = np.argsort(-sim, axis=1, kind="stable")
    t2i_rank = np.argsort(-sim.T, axis=1, kind="stable")
    out: dict[str, Any] = {"images": n_img, "texts": n_txt}
    for k in ks:
        hit_i2t = (text_image[i2t_rank[:, :k]] == np.arange(n_img)[:, None]).any(axis=1)
        hit_t2i = (t2i_rank[:, :k] == text_image[:, None]).any(axis=1)
        out[f"i2t_r@{k}"] = float(hit_i2t.mean())
        out[f"t2i_r@{k}"] = float(hit_t2i.mean())
        caps_per_img = np.bincount(text_image, minlength=n_img)
        out[f"chance_i2t_r@{k}"] = float(np.mean(1 - _comb_ratio(n_txt, caps_per_img, k)))
        out[f"chance_t2i_r@{k}"] = min(1.0, k / n_img)
    return out


def _comb_ratio(n: int, m: np.ndarray, k: int) -> np.ndarray:
    """P(no caption of an image among k random texts) = C(n - m, k) / C(n, k)."""
    k = min(k, n)
    ratio = np.ones(len(m))
    for i in range(k):
        ratio *= np.clip((n - m - i) / (n - i), 0, None)
    return ratio


def gs_byte_stats(encoded: Sequence[Encoded]) -> dict[str, Any]:
    """mean_bytes, compression, mean_gaussians, fp16_bytes for a list of Encoded."""
    counts = np.array([e.splats.num_gaussians for e in encoded], np.float64)
    raw = np.array([e.splats.width * e.splats.height * 3 for e in encoded], np.float64)
    sizes = [e.nbytes for e in encoded]
    real = all(s is not None for s in sizes)
    mean_bytes = float(np.mean(sizes)) if real else None
    return {"mean_bytes": mean_bytes, "raw_bytes": float(raw.mean()),
            "compression": float(raw.mean() / mean_bytes) if mean_bytes else None,
            "mean_gaussians": float(counts.mean()), "fp16_bytes": float(16 * counts.mean()),
            "fp16_compression": float(raw.mean() / (16 * counts.mean()))}


def dataset_embeddings(model: Any, dataset: Dataset, input: str, *, settings: GaussianSettings | None = None,
                       cache_dir: str | None = None, batch_size: int = 256, device: Any = "cpu",
                       progress: Callable[[int], None] | None = None) -> tuple[Any, dict[str, Any]]:
    """Embeddings of every item of ``dataset`` from ``input`` "rgb" or "gs", and byte facts for GS."""
    size = model.config.vision.image_size
    if input == "rgb":
        return embed_pixels(model, load_pixels(dataset.items, size), batch_size, device), {}
    if input != "gs":
        raise ClipInputError(f"input must be 'rgb' or 'gs', got {input!r}")
    need_pixels = any(it.gsplat is None for it in dataset.items)
    if need_pixels and settings is None:
        raise ClipInputError("GS input from images needs encode settings (a rate), or .gsplat files")
    pixels = load_pixels([it for it in dataset.items if it.gsplat is None], size) if need_pixels else None
    if pixels is not None:  # gaussians_for indexes pixels by item position
        full = np.zeros((len(dataset.items),) + pixels.shape[1:], np.uint8)
        full[[i for i, it in enumerate(dataset.items) if it.gsplat is None]] = pixels
        pixels = full
    cache = GaussianCache(settings, cache_dir) if settings is not None else None
    encoded = gaussians_for(dataset.items, pixels, cache, progress)
    facts = gs_byte_stats(encoded)
    if need_pixels and settings is not None:
        facts["encode_settings"] = settings.to_dict()
    return embed_splats(model, [e.splats for e in encoded], batch_size, device), facts


def zeroshot(model: Any, dataset: Dataset, input: str = "rgb", *, templates: Sequence[str],
             settings: GaussianSettings | None = None, cache_dir: str | None = None, batch_size: int = 256,
             device: Any = "cpu", progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Zero-shot classification of a labelled dataset (see the module doc)."""
    if not dataset.labelled:
        raise ClipInputError(f"{dataset.root}: zero-shot classification needs class labels (an ImageFolder)")
    emb, facts = dataset_embeddings(model, dataset, input, settings=settings, cache_dir=cache_dir,
                                    batch_size=batch_size, device=device, progress=progress)
    scores = zeroshot_scores(emb, class_text_embeddings(model, dataset.classnames or [], templates),
                             dataset.labels(), dataset.classnames or [])
    return {"input": input, **scores, **facts}


def retrieval(model: Any, dataset: Dataset, input: str = "rgb", *, settings: GaussianSettings | None = None,
              cache_dir: str | None = None, batch_size: int = 256, device: Any = "cpu",
              progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Text<->image recall@1/5/10 on a captioned dataset (see the module doc)."""
    import torch

    if not dataset.captioned:
        raise ClipInputError(f"{dataset.root}: retrieval needs captions (a captions CSV or .txt entries)")
    emb, facts = dataset_embeddings(model, dataset, input, settings=settings, cache_dir=cache_dir,
                                    batch_size=batch_size, device=device, progress=progress)
    texts = [c for it in dataset.items for c in it.captions]
    owner = np.array([i for i, it in enumerate(dataset.items) for _ in it.captions], np.int64)
    with torch.no_grad():
        text_emb = torch.cat([model.encode_text(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)])
    text_emb = torch.nn.functional.normalize(text_emb.float(), dim=-1)
    return {"input": input, **retrieval_scores(emb, text_emb, owner), **facts}
