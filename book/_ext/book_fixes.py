"""Sphinx extension with one fix for Jupyter Book 1.0.4's HTML.

sphinx-thebe 0.3.1 (and sphinx-togglebutton) add inline scripts on an event
that fires twice in a Jupyter Book build, once with ``filename=None`` and once
with ``filename=''``, so every page declared ``const THEBE_JS_URL`` twice and
the browser logged "Identifier 'THEBE_JS_URL' has already been declared".
This drops scripts that repeat an earlier one (same file, same attributes,
``None`` and ``''`` alike) before a page is written.
"""


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


def setup(app):
    app.connect("html-page-context", _drop_duplicate_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
