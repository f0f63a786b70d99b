"""Write mmtui/encoders/weights/imagenet_classes.json: the texts of the ImageNet bridge's 1000 classes.

    python scripts/make_imagenet_class_texts.py [--out mmtui/encoders/weights/imagenet_classes.json]

The lite image head places a picture where the text head puts the names of its likeliest ImageNet classes (the
ImageNet bridge, mmtui.encoders.lite.bridge_names). Each class is described by two texts whose MiniLM features
are averaged: its curated name (open_clip's list, OpenAI's CLIP names: "tench", "goldfish", "great white shark")
and "name: WordNet gloss" ("tench: freshwater dace-like game fish of Europe and western Asia noted for ability to
survive outside water"). On held-out products of IKEA and Grocery this placed pictures better than torchvision's
names alone (docs in benchmarks/results/pictures.md). Sources, all read from installed development packages (run
once, no download; neither package is needed at run time): open_clip_torch's zero_shot_metadata for the names,
timm's data/_info files for the synset order and the WordNet glosses (WordNet 3.0, licence in the JSON).
The shipped heads' class_text buffer is made from this file by scripts/train_shipped_heads.py --class-texts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "mmtui" / "encoders" / "weights" / "imagenet_classes.json"

WORDNET_LICENSE = """WordNet Release 3.0

This software and database is being provided to you, the LICENSEE, by Princeton University under the following \
license. By obtaining, using and/or copying this software and database, you agree that you have read, understood, \
and will comply with these terms and conditions.:

Permission to use, copy, modify and distribute this software and database and its documentation for any purpose \
and without fee or royalty is hereby granted, provided that you agree to comply with the following copyright \
notice and statements, including the disclaimer, and that the same appear on ALL copies of the software, database \
and documentation, including modifications that you make for internal use or for distribution.

WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved.

THIS SOFTWARE AND DATABASE IS PROVIDED "AS IS" AND PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES, \
EXPRESS OR IMPLIED. BY WAY OF EXAMPLE, BUT NOT LIMITATION, PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR \
WARRANTIES OF MERCHANT- ABILITY OR FITNESS FOR ANY PARTICULAR PURPOSE OR THAT THE USE OF THE LICENSED SOFTWARE, \
DATABASE OR DOCUMENTATION WILL NOT INFRINGE ANY THIRD PARTY PATENTS, COPYRIGHTS, TRADEMARKS OR OTHER RIGHTS.

The name of Princeton University or Princeton may not be used in advertising or publicity pertaining to \
distribution of the software and/or database. Title to copyright in this software, database and any associated \
documentation shall at all times remain with Princeton University and LICENSEE agrees to preserve same."""


def _timm_info(name: str) -> Path:
    import timm

    return Path(timm.__file__).parent / "data" / "_info" / name


def class_texts() -> list[dict]:
    """Per ImageNet-1k class, in the classifier's order: its synset id and its texts (curated name, "name: gloss")."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    synsets = _timm_info("imagenet_synsets.txt").read_text(encoding="utf-8").split()
    gloss = dict(line.split("\t", 1) for line in
                 _timm_info("imagenet_synset_to_definition.txt").read_text(encoding="utf-8").splitlines()
                 if "\t" in line)
    if len(synsets) != 1000 or len(IMAGENET_CLASSNAMES) != 1000:
        raise SystemExit(f"expected 1000 classes, found {len(synsets)} synsets and {len(IMAGENET_CLASSNAMES)} names")
    out = []
    for index, (synset, name) in enumerate(zip(synsets, IMAGENET_CLASSNAMES)):
        definition = gloss[synset].strip()
        out.append({"index": index, "synset": synset, "texts": [name, f"{name}: {definition}"]})
    return out


def document(classes: list[dict]) -> dict:
    import open_clip
    import timm

    return {
        "about": "Texts of the 1000 ImageNet-1k classes for the lite image head's ImageNet bridge; a class's "
                 "MiniLM feature is the mean of its texts' (mean-pooled last hidden states).",
        "made_by": "scripts/make_imagenet_class_texts.py",
        "sources": {
            "names": f"open_clip_torch {open_clip.__version__}, open_clip/zero_shot_metadata.py "
                     "IMAGENET_CLASSNAMES (OpenAI CLIP's curated names, MIT licence)",
            "synsets and glosses": f"timm {timm.__version__}, timm/data/_info/imagenet_synsets.txt and "
                                   "imagenet_synset_to_definition.txt (WordNet 3.0 glosses)",
        },
        "wordnet_license": WORDNET_LICENSE,
        "classes": classes,
    }


def _dumps(doc: dict) -> str:
    """Indented JSON with one class a line (readable diffs, a third of the size of fully indented JSON)."""
    head = json.dumps({k: v for k, v in doc.items() if k != "classes"}, indent=1, ensure_ascii=False)
    rows = ",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in doc["classes"])
    return head[:-2] + ',\n "classes": [\n' + rows + "\n ]\n}\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    doc = document(class_texts())
    args.out.write_text(_dumps(doc), encoding="utf-8")
    print(f"wrote {len(doc['classes'])} classes to {args.out}")


if __name__ == "__main__":
    main()
