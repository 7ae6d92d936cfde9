"""Data page: pick a dataset (the demo, a folder under DATA, or a dropped .zip) and explore it —
counts, class balance, box statistics, a geometry check (can a model's anchors match these boxes?),
data-quality problems and an image browser with boxes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import plotly.express as px
import streamlit as st

from detcore import paths, viz
from detcore.data import stats
from detcore.data.detect import import_uploaded_zip
from detcore.errors import DetcoreError
from detcore.structures import ParsedDataset
from detcore.train.presets import suggest_preset
from ui import state
from ui.audit import audit
from ui.augment_preview import augment_preview_ui
from ui.download import download_ui
from ui.feedback import shown_errors
from ui.geometry import geometry_check, input_text, recall_table, target_label, target_options
from ui.loaders import load_parsed_dataset, load_sample_image
from ui.shell import page_shell

BROWSER_PAGE_SIZE = 12


def _folders_under_data() -> list[str]:
    root = paths.data_root()
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    uploads = paths.uploads_root()
    if uploads.is_dir():
        found += [p for p in uploads.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(str(p.relative_to(root)) for p in found if p != uploads)


def _use_dataset(path: Path) -> None:
    state.set_current_dataset(path)
    st.rerun()


def folder_picker_ui() -> None:
    folders = _folders_under_data()
    choice = st.selectbox("Folder under DATA", folders, index=None, placeholder="Pick a folder…")
    typed = st.text_input("…or a path under DATA", placeholder="e.g. facemask/train")
    if st.button("Open folder", disabled=not (choice or typed)):
        with shown_errors():
            _use_dataset(paths.confine_to_data_roots(typed or choice))


def zip_upload_ui() -> None:
    upload = st.file_uploader("Drop a dataset .zip (VOC, Penn-Fudan, COCO or YOLO)", type=["zip"], key="data_zip")
    if upload is None or st.session_state.get("_data_zip_done") == upload.file_id:
        return
    try:
        with st.spinner("Extracting safely…"):
            folder = import_uploaded_zip(upload.getvalue(), upload.name)
    except DetcoreError as e:
        st.error(str(e), icon=":material/error:")  # the current dataset stays as it was
        return
    st.session_state["_data_zip_done"] = upload.file_id
    audit("dataset_imported", name=upload.name, bytes=upload.size, folder=str(folder))
    _use_dataset(folder)


def dataset_picker_ui() -> None:
    with st.expander("Change dataset"):
        demo_col, folder_col, zip_col = st.columns(3)
        with demo_col:
            st.markdown("**Demo**  \nSynthetic faces with / without masks, generated locally.")
            if st.button("Use the demo dataset"):
                _use_dataset(state.demo_dataset_path())
        with folder_col:
            folder_picker_ui()
        with zip_col:
            zip_upload_ui()


def overview_ui(parsed: ParsedDataset) -> None:
    cols = st.columns(5)
    cols[0].metric("Format", parsed.format.upper())
    cols[1].metric("Images", f"{parsed.num_images:,}")
    cols[2].metric("Objects", f"{parsed.num_objects:,}")
    cols[3].metric("Classes", len(parsed.classes))
    cols[4].metric("Problems", len(parsed.problems))


def class_balance_ui(parsed: ParsedDataset) -> None:
    counts = stats.class_counts(parsed)
    per_image = stats.objects_per_image(parsed)
    left, right = st.columns(2)
    with left:
        st.plotly_chart(viz.class_balance_figure(dict(zip(counts["class"], counts["objects"])), parsed.classes),
                        key="data_class_balance")
    with right:
        figure = px.histogram(per_image, x="objects", title="Objects per image", template="plotly_white")
        figure.update_layout(bargap=0.1, yaxis_title="images")
        st.plotly_chart(figure, key="data_objects_per_image")
    st.dataframe(counts, hide_index=True, column_config={
        "share": st.column_config.ProgressColumn("share", min_value=0.0, max_value=1.0, format="percent")})


def box_stats_ui(parsed: ParsedDataset) -> None:
    boxes = stats.box_table(parsed)
    images = stats.image_table(parsed)
    if boxes.empty:
        st.info("This dataset has no boxes.")
        return
    labels = boxes["class"].map({c: i for i, c in enumerate(parsed.classes)}).to_numpy()
    left, right = st.columns(2)
    with left:
        st.plotly_chart(viz.box_size_figure(widths=boxes["width"], heights=boxes["height"], labels=labels,
                                            classes=parsed.classes), key="data_box_sizes")
    with right:
        aspect = px.histogram(boxes, x="aspect", color="class", nbins=40, log_x=False, barmode="overlay",
                              title="Box aspect ratio (width / height)", template="plotly_white",
                              color_discrete_map={c: viz.rgb_hex(rgb) for c, rgb in viz.class_colors(parsed.classes).items()})
        st.plotly_chart(aspect, key="data_box_aspect")
    sizes = images.groupby(["width", "height"], dropna=False).size().reset_index(name="images")
    sizes_fig = px.scatter(sizes, x="width", y="height", size="images", title="Image sizes (pixels)",
                           template="plotly_white", hover_data=["images"])
    st.plotly_chart(sizes_fig, key="data_image_sizes")


def geometry_ui(parsed: ParsedDataset) -> None:
    """Best possible recall of a model's anchors on these boxes, default vs fitted, with the plot."""
    if not parsed.num_objects:
        st.info("This dataset has no boxes to check.")
        return
    options = target_options()
    suggested, _ = suggest_preset(parsed.root, cuda=False)
    if st.session_state.get("data_geometry_dataset") != str(parsed.root) or \
            st.session_state.get("data_geometry_target") not in options:
        # another dataset: start from the preset it would train with, not the last dataset's choice
        st.session_state["data_geometry_dataset"] = str(parsed.root)
        st.session_state["data_geometry_target"] = suggested
    target = st.selectbox("Model or preset", options, format_func=target_label,
                          key="data_geometry_target",
                          help="A preset means its model with the geometry the preset trains with; a bare model "
                               "gets anchors and input size fitted to the boxes.")
    with shown_errors(stop=False):
        check, panels = geometry_check(parsed, target)
        fitted, default = check["fitted"], check["default"]
        good = (fitted["best_possible_recall"] or 0) >= 0.9
        (st.success if good else st.warning)(check["verdict"], icon=":material/straighten:")
        cols = st.columns(4)
        cols[0].metric("Recall ceiling, default", f"{100 * default['best_possible_recall']:.0f} %")
        cols[1].metric("Recall ceiling, fitted", f"{100 * fitted['best_possible_recall']:.0f} %",
                       delta=f"{100 * (fitted['best_possible_recall'] - default['best_possible_recall']):+.0f} pts")
        cols[2].metric("Input, default", input_text(default["geometry"]["input"]))
        crop_input = fitted.get("crop_input")
        cols[3].metric("Input, fitted", input_text(fitted["geometry"]["input"]),
                       help=f"This preset trains on crops cut at {input_text(crop_input)} and predicts whole images "
                            f"at this larger size: crops show objects larger than a whole image does."
                       if crop_input else None)
        st.plotly_chart(viz.anchor_fit_figure(panels, parsed.classes), key="data_geometry_plot")
        percent = st.column_config.NumberColumn(format="percent")
        st.dataframe(recall_table(check), hide_index=True, key="data_geometry_table",
                     column_config={"default recall": percent, "fitted recall": percent})
        st.caption(f"Best possible recall: the share of boxes that at least one anchor overlaps with IoU ≥ 0.5 "
                   f"after the model's own resize — no training can find the others. Fitted on the training part "
                   f"of a default split ({check['fitted_on']['boxes']} boxes, seed 0), measured on all "
                   f"{default['boxes']} boxes; size buckets are COCO's, in model-input pixels. Train with "
                   f"anchors = auto and input size = auto to use the fit.")


def problems_ui(parsed: ParsedDataset) -> None:
    table = stats.problems_table(parsed)
    if table.empty:
        st.success("No data-quality problems found.")
        return
    kinds = sorted(table["kind"].unique())
    # Keyed by dataset: a kept selection from the previous dataset would hide this one's problems.
    dataset_key = hashlib.sha1(str(parsed.root).encode()).hexdigest()[:8]
    chosen = st.multiselect("Problem kinds", kinds, default=kinds, key=f"data_problem_kinds_{dataset_key}")
    text = st.text_input("File contains", key="data_problem_text")
    shown = table[table["kind"].isin(chosen)]
    if text:
        shown = shown[shown["file"].str.contains(text, case=False, regex=False)]
    st.dataframe(shown, hide_index=True)
    st.caption(f"{len(shown)} of {len(table)} problems shown")


def _browser_filter_ui(parsed: ParsedDataset) -> list:
    kinds_by_image: dict[str, set[str]] = {}
    for p in parsed.problems:
        if p.image_id:
            kinds_by_image.setdefault(p.image_id, set()).add(p.kind)
    left, right = st.columns(2)
    classes = left.multiselect("Images containing class", parsed.classes, key="data_browser_classes")
    kinds = sorted({p.kind for p in parsed.problems if p.image_id})
    problem = right.selectbox("With problem", ["any image", *kinds], key="data_browser_problem")
    wanted = {parsed.classes.index(c) for c in classes}
    samples = []
    for s in parsed.samples:
        if wanted and not wanted.intersection(s.labels.tolist()):
            continue
        if problem != "any image" and problem not in kinds_by_image.get(s.image_id, ()):
            continue
        samples.append(s)
    return samples


def class_legend_html(classes: list[str]) -> str:
    chips = [f'<span style="background:{viz.rgb_hex(rgb)};color:#111;padding:1px 8px;border-radius:8px;'
             f'margin-right:6px;font-size:0.85em">{name}</span>' for name, rgb in viz.class_colors(classes).items()]
    return "".join(chips)


def image_browser_ui(parsed: ParsedDataset) -> None:
    samples = _browser_filter_ui(parsed)
    if not samples:
        st.info("No image matches these filters.")
        return
    n_pages = (len(samples) + BROWSER_PAGE_SIZE - 1) // BROWSER_PAGE_SIZE
    pager, legend = st.columns([1, 4], vertical_alignment="bottom")
    page = pager.number_input(f"Page (of {n_pages})", 1, n_pages, 1, key="data_browser_page") if n_pages > 1 else 1
    chunk = samples[(page - 1) * BROWSER_PAGE_SIZE: page * BROWSER_PAGE_SIZE]
    legend.markdown(f"{len(samples)} images &nbsp; " + class_legend_html(parsed.classes), unsafe_allow_html=True)
    cols = st.columns(4)
    for i, sample in enumerate(chunk):
        with cols[i % 4], shown_errors(stop=False):
            st.image(load_sample_image(parsed, sample), caption=f"{sample.image_id} · {sample.num_objects} objects")


page_shell("Data")
dataset_picker_ui()
with shown_errors():
    dataset = load_parsed_dataset(state.current_dataset_path())
st.caption(f"`{dataset.root}`")
overview_ui(dataset)
with st.expander("Download as COCO / YOLO / VOC", icon=":material/download:"):
    download_ui(dataset)
balance_tab, boxes_tab, geometry_tab, problems_tab, browser_tab, augment_tab = st.tabs(
    ["Classes", "Boxes & images", "Geometry check", f"Problems ({len(dataset.problems)})", "Image browser",
     "Augmentation preview"]
)
with balance_tab:
    class_balance_ui(dataset)
with boxes_tab:
    box_stats_ui(dataset)
with geometry_tab:
    geometry_ui(dataset)
with problems_tab:
    problems_ui(dataset)
with browser_tab:
    image_browser_ui(dataset)
with augment_tab:
    augment_preview_ui(dataset)
