"""The README's Python snippets (its ```python blocks) run as written, in order, in one
namespace, from an empty folder, as a reader pasting them into a session would run them."""

import re
from pathlib import Path

import pytest

import kerasnets

README = Path(__file__).resolve().parents[1] / "README.md"

# The weight files the snippets load, which the README says the reader already has: made here
# with the layer names and weight shapes of keras.applications' files (nothing is downloaded).
WEIGHT_FILES = {
    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5":
        lambda: kerasnets.MobileNetV2(input_shape=(224, 224, 3)),
}


def python_blocks(text):
    """Returns ``[(line, code)]`` of the ```python blocks of a Markdown text, ``line`` the
    1-based line of the block's first code line."""
    return [(text.count("\n", 0, match.start(1)) + 1, match.group(1))
            for match in re.finditer(r"^```python\n(.*?)^```", text, re.M | re.S)]


def test_python_blocks_are_found():
    text = "a\n```python\nx = 1\n```\n```sh\nls\n```\n```python\ny = 2\n```\n"
    assert python_blocks(text) == [(3, "x = 1\n"), (9, "y = 2\n")]


@pytest.mark.slow
def test_readme_python_blocks_run_as_written(tmp_path, monkeypatch):
    blocks = python_blocks(README.read_text())
    assert blocks, "README.md has no ```python block"
    for name in sorted(set(re.findall(r"[\"']([\w.\-]+\.h5)[\"']",
                                      "".join(code for _, code in blocks)))):
        assert name in WEIGHT_FILES, f"README.md loads {name}: add how to make it to WEIGHT_FILES"
        WEIGHT_FILES[name]().save_weights(str(tmp_path / name))
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__main__"}
    for line, code in blocks:
        # Padded so that a traceback names the README's own line numbers.
        exec(compile("\n" * (line - 1) + code, str(README), "exec"), namespace)
