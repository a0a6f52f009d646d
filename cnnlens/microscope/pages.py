"""The HTML of each page, made from the same dict that is written beside it as JSON.

Pages are plain HTML5 with every tag closed and every value escaped; links and pictures are
relative paths inside the site, so it opens from the file system and works offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

__all__ = ["concepts_page", "images_page", "layer_page", "model_page", "unit_page"]


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, int):
        return f"{value:,}"
    return _e(value)


def _link(target: dict[str, Any] | None, label: str) -> str:
    if not target:
        return f'<span class="muted">{_e(label)}</span>'
    return f'<a href="{_e(target["page"])}">{_e(label)} {_e(target["name"])}</a>'


def _page(title: str, depth: int, crumbs: Sequence[tuple[str, str | None]], body: str, neighbours: str = "") -> str:
    up = "../" * depth
    trail = " › ".join(f'<a href="{_e(href)}">{_e(text)}</a>' if href else f"<span>{_e(text)}</span>" for text, href in crumbs)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8" />
<meta name="viewport" content="width=device-width, initial-scale=1" />
<title>{_e(title)}</title>
<link rel="stylesheet" href="{up}assets/site.css" />
<script src="{up}assets/site.js"></script>
</head>
<body>
<header class="top"><nav class="crumbs">{trail}</nav><nav class="neighbours">{neighbours}</nav></header>
<main>
{body}
</main>
</body>
</html>
"""


def _facts(items: Sequence[tuple[str, Any]]) -> str:
    cells = "".join(f"<div><b>{_num(v) if not isinstance(v, str) else _e(v)}</b><span>{_e(k)}</span></div>" for k, v in items)
    return f'<div class="facts">{cells}</div>'


def _rf_text(rf: Any) -> str:
    if isinstance(rf, dict):
        size, stride = rf.get("size") or ["?", "?"], rf.get("stride") or ["?", "?"]
        return f"{size[0]}×{size[1]} px, stride {stride[0]}"
    return "–" if rf is None else str(rf)


def _shape(shape: Any) -> str:
    return "×".join(str(s) for s in shape) if shape else "–"


def _class_tag(name: str | None) -> str:
    return f' <span class="muted">· {_e(name)}</span>' if name else ""


def _tuning_tag(tuning: dict[str, Any] | None) -> str:
    if not tuning:
        return ""
    cls = tuning.get("classification") or ""
    return f' <span class="tag {_e(cls)}">{_e(cls)}</span>'


# -- model page ----------------------------------------------------------------------------------


def _report_table(report: dict[str, Any], site_layers: dict[str, str]) -> str:
    head = "<tr><th>layer</th><th>type</th><th>output</th><th>params</th><th>MACs</th><th>output memory</th><th>receptive field</th></tr>"
    rows = []
    for row in report.get("layers", []):
        name, kind = row.get("name", ""), row.get("type", "")
        page = site_layers.get(name)
        label = f'<a href="{_e(page)}">{_e(name)}</a>' if page else _e(name)
        rf = _rf_text(row.get("receptive_field"))
        mark = ' class="site"' if page else ""
        rows.append(
            f'<tr{mark} data-text="{_e(f"{name} {kind} {rf}")}"><td>{label}</td><td class="type">{_e(kind)}</td>'
            f"<td>{_e(_shape(row.get('output_shape')))}</td><td>{_num(row.get('params'))}</td><td>{_num(row.get('macs'))}</td>"
            f"<td>{_num(row.get('output_bytes'))} B</td><td>{_e(rf)}</td></tr>"
        )
    return f'<table class="report"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def model_page(data: dict[str, Any]) -> str:
    totals = data["report"].get("totals", {})
    layers = data["layers"]
    items = "".join(
        f'<li><a href="{_e(layer["page"])}">{_e(layer["name"])}</a> <span class="muted">{_e(layer["type"])}, '
        f'{_e(_shape(layer["output_shape"]))}, field {_e(_rf_text(layer["receptive_field"]))}, {len(layer["units"])} units</span></li>'
        for layer in layers
    )
    figures = []
    if data["figures"].get("report"):
        figures.append(f'<h2>Costs and receptive fields</h2><img class="figure" src="{_e(data["figures"]["report"])}" alt="output memory, MACs and receptive field per layer" />')
    if data["figures"].get("filters"):
        figures.append(f'<h2>First-layer filters</h2><img class="figure" src="{_e(data["figures"]["filters"])}" alt="first-layer filters" />')
    attribution = ""
    if data.get("attribution"):
        attribution = f'<p><a href="{_e(data["attribution"]["page"])}">Attribution maps of {data["attribution"]["n_images"]} images</a> <span class="muted">({_e(", ".join(data["attribution"]["methods"]))})</span></p>'
    if data.get("representations"):
        what = "CKA similarity of the layers and linear probes by depth" if data["representations"]["probe"] else "CKA similarity of the layers"
        attribution += f'<p><a href="{_e(data["representations"]["page"])}">Representations by depth</a> <span class="muted">({what})</span></p>'
    body = f"""<h1>{_e(data["model"])} <span class="muted">({_e(data["weights"])})</span></h1>
{_facts([("input", _shape(data["input_size"])), ("parameters", totals.get("params")), ("MACs", totals.get("macs")), ("images mined", data["n_images"]), ("top-k per unit", data["k"])])}
<p class="muted">Images: {_e(data["images"])}. Every unit's top patches are cut from these images by its receptive field.</p>
<h2>Layers in this site</h2>
<ul class="layers">{items}</ul>
{attribution}
{"".join(figures)}
<h2>Report</h2>
<div class="filter"><input id="filter" type="search" placeholder="filter layers: name, type" aria-label="filter layers" /><span id="filter-count" class="count"></span></div>
{_report_table(data["report"], {layer["name"]: layer["page"] for layer in layers})}
<p class="muted"><a href="index.json">index.json</a></p>"""
    return _page(f"{data['model']} – cnnlens microscope", 0, [(data["model"], None)], body)


# -- layer page ----------------------------------------------------------------------------------


def layer_page(data: dict[str, Any]) -> str:
    cards = []
    for u in data["units"]:
        pics = []
        if u.get("featvis"):
            pics.append(f'<img src="{_e(u["featvis"])}" alt="feature visualization of unit {u["channel"]}" />')
        if u.get("top_patch"):
            pics.append(f'<img src="{_e(u["top_patch"])}" alt="strongest patch of unit {u["channel"]}" />')
        tuning = u.get("tuning")
        words = [f"unit {u['channel']}", f"#{u['channel']}", "dead" if u.get("dead") else "alive", *(str(u.get("class_name") or "").split())]
        if tuning:
            words += [str(tuning.get("classification") or ""), f"osi {tuning.get('osi')}"]
        numbers = f"mean {_num(u.get('mean_activation'))} · top {_num(u.get('top_activation'))}"
        if tuning:
            numbers += f" · OSI {_num(tuning.get('osi'), 2)}"
        dead = ' <span class="tag dead">dead</span>' if u.get("dead") else ""
        cards.append(
            f'<a class="card" href="{_e(u["page"])}" data-text="{_e(" ".join(words))}"><div class="pics">{"".join(pics)}</div>'
            f'<div class="name">unit {u["channel"]}{_class_tag(u.get("class_name"))}{_tuning_tag(tuning)}{dead}</div><div class="numbers">{numbers}</div></a>'
        )
    rf = data["receptive_field"]
    body = f"""<h1>{_e(data["layer"])} <span class="muted">{_e(data["type"])}</span></h1>
{_facts([("output", _shape(data["output_shape"])), ("receptive field", _rf_text(rf)), ("units shown", f"{len(data['units'])} of {data['n_channels']}"), ("dead units (all channels)", data["n_dead"])])}
<p class="muted">Each card: the unit's feature visualization (an image optimized to excite it) beside its strongest patch among the images. Type in the box to filter (unit number, simple, complex, dead ...).</p>
<div class="filter"><input id="filter" type="search" placeholder="filter units" aria-label="filter units" /><span id="filter-count" class="count"></span></div>
<div class="grid">{"".join(cards)}</div>
{_concepts_link(data)}<h2>All {data["n_channels"]} channels</h2>
<p class="muted">Mean and best activation of every channel over the images (the unit of a channel is its maximum over positions); channels with a page are linked. A larger <code>--units</code> adds pages without mining again.</p>
{_channel_table(data)}
<p class="muted"><a href="{_e(data["json"])}">{_e(data["json"])}</a></p>"""
    neighbours = _link(data.get("previous"), "←") + _link(data.get("next"), "→")
    return _page(f"{data['layer']} – {data['model']}", 1, [(data["model"], data["model_page"]), (data["layer"], None)], body, neighbours)


def _channel_table(data: dict[str, Any]) -> str:
    pages = {u["channel"]: u["page"] for u in data["units"]}
    rows = []
    for c in data["channels"]:
        ch = c["channel"]
        label = f'<a href="{_e(pages[ch])}">{ch}</a>' if ch in pages else str(ch)
        state = "dead" if c["dead"] else "alive"
        rows.append(
            f'<tr data-text="unit {ch} #{ch} {state}"><td>{label}</td><td>{_num(c["mean_activation"])}</td>'
            f'<td>{_num(c["top_activation"])}</td><td class="type">{state}</td></tr>'
        )
    head = "<tr><th>channel</th><th>mean activation</th><th>top activation</th><th>fired</th></tr>"
    return f'<table class="report channels"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


# -- unit page -----------------------------------------------------------------------------------


def _cells(items: Sequence[tuple[str, str, str]]) -> str:
    return '<div class="row">' + "".join(
        f'<div class="cell"><img src="{_e(src)}" alt="{_e(alt)}" /><div class="caption">{caption}</div></div>' for src, alt, caption in items
    ) + "</div>"


def unit_page(data: dict[str, Any]) -> str:
    dead = ' <span class="tag dead">dead</span>' if data["dead"] else ""
    badge = data.get("tuning") if data.get("tuning_badge", True) else None
    parts = [f'<h1>{_e(data["unit"])}{_class_tag(data.get("class_name"))}{_tuning_tag(badge)}{dead}</h1>']
    if data.get("class_name"):
        parts.append(f'<p class="muted">This layer\'s channels are the classes: unit {data["channel"]} is the score of <b>{_e(data["class_name"])}</b>.</p>')
    parts.append(
        _facts([
            ("mean activation", data.get("mean_activation")),
            ("top activation", data.get("top_activation")),
            ("receptive field", _rf_text(data["receptive_field"])),
            ("images", data["n_images"]),
        ])
    )
    fv = data.get("featvis")
    if fv:
        parts.append(
            f'<h2>Feature visualization</h2><div class="row"><div class="cell"><img src="{_e(fv["image"])}" alt="feature visualization" />'
            f'<div class="caption">objective {_num(fv.get("objective"))}</div></div></div>'
            f'<p class="muted">{_e(fv.get("description", ""))}</p>'
        )
    patches = data["patches"]
    if patches:
        parts.append("<h2>Top dataset patches</h2>")
        parts.append(_cells([(p["crop"], f"patch {p['rank']}", f"{_e(p['image_name'])}<br />{_num(p['activation'])}") for p in patches]))
        parts.append('<p class="muted">Each patch is the unit\'s receptive field in the image where it fired most (grey where the field leaves the image).</p>')
        if any(p.get("projection") for p in patches):
            parts.append(f"<h2>{_e(data['deconv_method'])} projections</h2>")
            parts.append(_cells([(p["projection"], f"projection {p['rank']}", f"rank {p['rank']}") for p in patches if p.get("projection")]))
            parts.append(f'<p class="muted">What in each patch drove the unit: the unit projected back to the pixels ({_e(data["deconv_method"])}, Zeiler &amp; Fergus 2014; Springenberg et al. 2015).</p>')
    parts.append(_relevance_rows(data.get("relevance")))
    tuning = data.get("tuning")
    if tuning:
        parts.append("<h2>Tuning to gratings</h2>")
        parts.append(
            _facts([
                ("class", (tuning.get("classification") if data.get("tuning_badge", True) else "none (weak)") or "–"),
                ("preferred orientation (deg)", tuning.get("preferred_orientation_deg")),
                ("OSI", tuning.get("osi")),
                ("F1/F0", tuning.get("modulation_ratio")),
                ("cycles per field", tuning.get("preferred_frequency_cycles_per_rf")),
            ])
        )
        share = data.get("grating_share")
        if share is not None:
            need = data.get("grating_badge_share", 0.25)
            verdict = "" if data.get("tuning_badge", True) else f": below the {100 * need:.0f} % a tuning class needs, so none is shown (the curves below describe a weak response)"
            parts.append(f'<p class="muted">Its best grating drives it to {100 * share:.0f} % of its top activation on the images{_e(verdict)}.</p>')
        if tuning.get("figure"):
            parts.append(f'<img class="figure" src="{_e(tuning["figure"])}" alt="tuning curves" />')
    elif data.get("tuning_note"):
        parts.append(f'<h2>Tuning to gratings</h2><p class="muted">{_e(data["tuning_note"])}</p>')
    parts.append(_circuit_rows(data.get("circuits")))
    parts.append(f'<p class="muted"><a href="{_e(data["json"])}">{_e(data["json"])}</a></p>')
    neighbours = _link(data.get("previous"), "←") + _link(data.get("next"), "→")
    crumbs = [(data["model"], data["model_page"]), (data["layer"], data["layer_page"]), (f"unit {data['channel']}", None)]
    return _page(f"{data['unit']} – {data['model']}", 2, crumbs, "\n".join(parts), neighbours)


def _relevance_rows(relevance: dict[str, Any] | None) -> str:
    """The unit's top patches by relevance and the classes its relevance goes to most."""
    if not relevance:
        return ""
    parts = []
    if relevance["patches"]:
        parts.append("<h2>Top dataset patches by relevance</h2>")
        parts.append(_cells([(p["crop"], f"relevance patch {p['rank']}", f"{_e(p['image_name'])}<br />{_num(p['activation'])}") for p in relevance["patches"]]))
        parts.append('<p class="muted">Ranked by the unit\'s LRP relevance when each image\'s top class is explained (relevance maximization, '
                     "Achtibat et al. 2023), not by its activation: the images where the unit mattered most to the decision.</p>")
    if relevance.get("note"):
        parts.append(f'<p class="muted">{_e(relevance["note"])}</p>')
    classes = relevance.get("classes") or []
    if classes:
        items = "".join(f"<li>{_e(c.get('name') or ('class ' + str(c['class'])))} <span class=\"muted\">{100 * float(c['share']):.1f} %</span></li>" for c in classes)
        parts.append(f'<h2>Classes that use it most</h2><ol class="classes">{items}</ol>')
        parts.append('<p class="muted">Share of the unit\'s positive relevance, summed over the images, that went to each explained class.</p>')
    return "\n".join(parts)


def _circuit_rows(circuits: dict[str, Any] | None) -> str:
    """The unit's strongest connections: "built from" the layer before, "used by" the layer after."""
    if not circuits:
        return ""
    parts = []
    for key, title in (("built_from", "Built from"), ("used_by", "Used by")):
        row = circuits.get(key)
        if not row:
            continue
        cards = []
        for c in row["cards"]:
            pictures = "".join(f'<img src="{_e(src)}" alt="{_e(alt)}" />' for src, alt in ((c.get("featvis"), "feature visualization"),
                               (c.get("patch"), "strongest patch"), (c.get("picture"), "weight")) if src)  # fmt: skip
            label = f"{_e(c['unit'])}<br />weight {_num(c['weight'])}"
            inner = f'<div class="pics">{pictures}</div><div class="caption">{label}</div>'
            cards.append(f'<a class="cell" href="{_e(c["page"])}">{inner}</a>' if c.get("page") else f'<div class="cell">{inner}</div>')
        parts.append(f'<h2>{title} {_e(row["layer"])}</h2><div class="row">{"".join(cards)}</div>')
    if parts:
        parts.append('<p class="muted">The strongest connections by expanded weights (Olah et al. 2020): the effective linear map between the '
                     "two layers, the nonlinearities between them set aside, summed over the kernel. The weight picture is the kernel: red "
                     "excites, blue inhibits.</p>")  # fmt: skip
    parts += [f'<p class="muted">{_e(note)}</p>' for note in circuits.get("notes", [])]
    return "\n".join(parts)


# -- attribution page ----------------------------------------------------------------------------


def images_page(data: dict[str, Any]) -> str:
    rows = []
    for item in data["images"]:
        top = ", ".join(f"{_e(t['class'])} {t['probability']:.2f}" for t in item["top"])
        rows.append(
            f'<div data-text="{_e(item["name"] + " " + " ".join(t["class"] for t in item["top"]))}">'
            f'<h2>{_e(item["name"])}</h2><p class="muted">top classes: {top}</p>'
            f'<img class="figure" src="{_e(item["figure"])}" alt="attribution maps of {_e(item["name"])}" /></div>'
        )
    body = f"""<h1>Attribution maps <span class="muted">{_e(data["model"])} ({_e(data["weights"])})</span></h1>
<p class="muted">Where in each image the network found the evidence for its top class: {_e(", ".join(data["methods"]))}.</p>
<div class="filter"><input id="filter" type="search" placeholder="filter images: name, class" aria-label="filter images" /><span id="filter-count" class="count"></span></div>
{"".join(rows)}
<p class="muted"><a href="images.json">images.json</a></p>"""
    return _page(f"attribution – {data['model']}", 0, [(data["model"], "index.html"), ("attribution", None)], body)


# -- representations page --------------------------------------------------------------------------


def representations_page(data: dict[str, Any]) -> str:
    crumbs = [(data["model"], "index.html"), ("representations", None)]
    if not data.get("cka"):
        body = f"<h1>Representations <span class=\"muted\">{_e(data['model'])}</span></h1><p>{_e(data.get('note') or '')}</p>"
        return _page(f"representations – {data['model']}", 0, crumbs, body)
    cka = data["cka"]
    pages = data.get("layer_pages", {})
    links = ", ".join(f'<a href="{_e(pages[n])}">{_e(n)}</a>' if n in pages else _e(n) for n in cka["layers_a"])
    parts = [
        f"""<h1>Representations by depth <span class="muted">{_e(data["model"])} ({_e(data["weights"])})</span></h1>
<h2>How similar the layers are</h2>
<p class="muted">Centered kernel alignment (Kornblith et al. 2019) between every two of the site's layers ({links}) over
{cka["n_images"]} images: {_e(cka["estimator"])}. Each layer's features are all its values; 1 is the same representation up to a rotation and a scale.</p>
<img class="figure" src="{_e(data["figures"]["cka"])}" alt="CKA similarity of the layers" />"""
    ]
    probe = data.get("probe")
    if probe:
        rows = "".join(f"<tr><td>{_e(r['layer'])}</td><td>{r['features']}</td><td>{100 * r['accuracy']:.1f} ± {100 * r['stderr']:.1f} %</td></tr>" for r in probe["layers"])
        parts.append(f"""<h2>What a linear read-out finds</h2>
<p class="muted">Held-out accuracy of a linear classifier of the images' labels on each layer ({_e(probe["recipe"])});
{probe["n_images"]} images, {probe["n_classes"]} classes, chance {100 * probe["chance"]:.1f} % (Alain &amp; Bengio 2016).</p>
<img class="figure" src="{_e(data["figures"]["probe"])}" alt="linear probe accuracy by depth" />
<table><thead><tr><th>layer</th><th>features</th><th>accuracy</th></tr></thead><tbody>{rows}</tbody></table>""")
    elif data.get("note"):
        parts.append(f'<p class="muted">{_e(data["note"])}</p>')
    parts.append('<p class="muted"><a href="representations.json">representations.json</a></p>')
    return _page(f"representations – {data['model']}", 0, crumbs, "\n".join(parts))


# -- concepts page ---------------------------------------------------------------------------------


def _concepts_link(data: dict[str, Any]) -> str:
    page = data.get("concepts_page")
    return f'<p><a href="{_e(page)}">Concepts of {_e(data["layer"])}</a>: directions over its channels found by NMF, with their patches.</p>\n' if page else ""


def concepts_page(data: dict[str, Any]) -> str:
    rows = []
    for c in data["concepts"]:
        pics = []
        if c.get("featvis"):
            pics.append(f'<img class="featvis" src="{_e(c["featvis"])}" alt="feature visualization of concept {c["concept"]}" />')
        pics += [f'<img src="{_e(p["crop"])}" alt="patch {j} of concept {c["concept"]}" title="{_e(p["image_name"])}: {_num(p["activation"])}" />'
                 for j, p in enumerate(c["patches"])]  # fmt: skip
        classes = ", ".join(f"{_e(k['name'] or k['class'])} {100 * k['share']:.0f} %" for k in c["classes"][:3]) or "–"
        channels = ", ".join(
            f'<a href="{_e(t["page"])}">{t["channel"]}</a>' if t.get("page") else str(t["channel"]) for t in c["channels"]
        )
        words = " ".join([f"concept {c['concept']}", *(str(k["name"] or k["class"]) for k in c["classes"])])
        rows.append(
            f'<div class="concept" data-text="{_e(words)}"><h2>concept {c["concept"]} <span class="muted">importance {_num(c["importance"])}</span></h2>'
            f'<div class="pics">{"".join(pics)}</div><p class="muted">raises most: {classes} · strongest channels: {channels}</p></div>'
        )
    body = f"""<h1>Concepts of {_e(data["layer"])} <span class="muted">{_e(data["model"])} ({_e(data["weights"])})</span></h1>
{_facts([("concepts", len(data["concepts"])), ("images", data["n_images"]), ("activation vectors factorised", data["n_rows"]), ("squared activation explained", f"{100 * data['explained']:.0f} %")])}
<p class="muted">Non-negative matrix factorisation of the layer's activation vectors (CRAFT, Fel et al. 2023): each concept is a non-negative
direction over the channels. Per concept: the feature visualization of its direction (framed), then its top patches by its activation,
cut by the receptive field. Importance: {_e(data["importance_rule"] or "not measured")}.</p>
<div class="filter"><input id="filter" type="search" placeholder="filter concepts: number, class" aria-label="filter concepts" /><span id="filter-count" class="count"></span></div>
{"".join(rows)}
<p class="muted"><a href="{_e(data["json"])}">{_e(data["json"])}</a></p>"""
    crumbs = [(data["model"], data["model_page"]), (data["layer"], data["layer_page"]), ("concepts", None)]
    return _page(f"concepts of {data['layer']} – {data['model']}", 1, crumbs, body)
