"""The "Nucleus statistics" dock widget: numbers of the result behind the selected layer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import Container, Label, PushButton, Table

from ._layers import domain_layer_data, layer_metadata
from ._stats import format_value, nucleus_domains, result_statistics

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["StatisticsWidget", "layer_result"]


def layer_result(layer):
    """(result name, ResultStack, source) behind a chromarate result layer, else None."""
    meta = layer_metadata(layer)
    stack = meta.get("stack")
    return (meta.get("result"), stack, meta.get("source")) if stack is not None else None


class StatisticsWidget(Container):
    """Table of the per-nucleus statistics of the current result.

    The current result is the one of the selected layer; when the selected layer is not a
    chromarate result, the most recently added result. The table follows the selection and
    layers being added or removed. *Show domains* adds the heterochromatin domains the
    statistics count as a labels layer.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=False)
        self._viewer = viewer
        self.title = Label(value="no chromarate result open")
        self.table = Table(value={"statistic": [], "value": []})
        self.table.native.verticalHeader().setVisible(False)
        self.domains_button = PushButton(text="Show heterochromatin domains", enabled=False)
        self.extend([self.title, self.table, self.domains_button])
        self.domains_button.changed.connect(self.show_domains)
        #: Name of the result shown, or None.
        self.current: str | None = None
        self._stack = None
        self._domains = None  # the current result's domains, found for its statistics
        self._events = (viewer.layers.selection.events.active, viewer.layers.events.inserted,
                        viewer.layers.events.removed)
        for ev in self._events:
            ev.connect(self.refresh)
        self.native.destroyed.connect(self._disconnect)
        self.refresh()

    def _disconnect(self, *_args) -> None:
        for ev in self._events:
            try:
                ev.disconnect(self.refresh)
            except (TypeError, ValueError, RuntimeError):
                pass

    def _current(self):
        found = layer_result(self._viewer.layers.selection.active)
        if found is None:
            for layer in reversed(list(self._viewer.layers)):
                found = layer_result(layer)
                if found is not None:
                    break
        return found

    def refresh(self, _event=None) -> None:
        """Show the statistics of the current result (errors become notifications)."""
        found = self._current()
        if found is None:
            self.current, self._stack, self._domains = None, None, None
            self.title.value = "no chromarate result open"
            self.table.value = {"statistic": [], "value": []}
            self.domains_button.enabled = False
            return
        name, stack, source = found
        if name == self.current:
            return
        try:
            domains = nucleus_domains(stack, name=name)
            stats = result_statistics(stack, name=name, path=source, domains=domains)
        except (ValueError, KeyError) as exc:
            from napari.utils.notifications import show_warning

            show_warning(f"no statistics for {name}: {exc}")
            return
        self.current, self._stack, self._domains = name, stack, domains
        self.title.value = f"result {name}"
        self.table.value = {"statistic": list(stats),
                            "value": [format_value(v) for v in stats.values()]}
        self._fit_table()
        self.domains_button.enabled = True

    def _fit_table(self) -> None:
        """Size the table to its content, so that every row shows without scrolling."""
        view = self.table.native
        view.resizeColumnsToContents()
        view.resizeRowsToContents()
        height = view.horizontalHeader().height() + 2 * view.frameWidth()
        height += sum(view.rowHeight(i) for i in range(view.rowCount()))
        header = view.verticalHeader()
        width = (header.width() if header.isVisible() else 0) + 2 * view.frameWidth()
        width += sum(view.columnWidth(i) for i in range(view.columnCount()))
        view.setMinimumSize(width, height)

    def show_domains(self, *_args) -> None:
        """Add the heterochromatin domains of the current result as a labels layer."""
        from ._present import as_layers

        if self._stack is None:
            return
        (layer,) = as_layers([domain_layer_data(self._domains.labels, self._stack,
                                                name=self.current)])
        self._viewer.add_layer(layer)
