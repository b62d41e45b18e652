"""Sphinx extension with two fixes for Jupyter Book 1.0.4's HTML.

1. sphinx-thebe 0.3.1 (and sphinx-togglebutton) add inline scripts on an event
   that fires twice in a Jupyter Book build, once with ``filename=None`` and once
   with ``filename=''``, so every page declared ``const THEBE_JS_URL`` twice and
   the browser logged "Identifier 'THEBE_JS_URL' has already been declared".
   This drops scripts that repeat an earlier one (same file, same attributes,
   ``None`` and ``''`` alike) before a page is written.

2. The embedding explorer (``tripletutils.explore``) carries BokehJS inline in its
   notebook output, ``<script type="text/javascript" data-bokehjs="VERSION">``, so
   that it works offline in JupyterLab, on Colab and in a saved page. In the book
   that would put 1.3 MB of the same JavaScript into every page with an explorer.
   This moves each such script into ``_static/bokehjs/bokeh-VERSION-HASH.min.js``
   (its exact text; the hash tells versions apart) and leaves a
   ``<script src=...>`` to it in the page: served by the book itself (no CDN) and
   cached by the browser from one page to the next.
"""

import hashlib
import re
from pathlib import Path

_INLINE_BOKEHJS = re.compile(
    r'<script type="text/javascript" data-bokehjs="([0-9A-Za-z.+-]+)">\n?(.*?)\n?'
    r"</script>",
    re.DOTALL,
)


def _key(script):
    filename = getattr(script, "filename", script) or ""
    attributes = getattr(script, "attributes", {}) or {}
    return str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items()))


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def _serve_bokehjs(app, pagename, templatename, context, doctree):
    body = context.get("body")
    if not body or "data-bokehjs=" not in body:
        return

    def to_static(match):
        version, code = match.group(1), match.group(2)
        digest = hashlib.sha256(code.encode("utf-8")).hexdigest()[:12]
        name = f"_static/bokehjs/bokeh-{version}-{digest}.min.js"
        target = Path(app.outdir) / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(code, encoding="utf-8")
        src = context["pathto"](name, 1)
        return (
            f'<script type="text/javascript" data-bokehjs="{version}" '
            f'src="{src}"></script>'
        )

    context["body"] = _INLINE_BOKEHJS.sub(to_static, body)


def setup(app):
    app.connect("html-page-context", _drop_duplicate_scripts)
    app.connect("html-page-context", _serve_bokehjs)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
