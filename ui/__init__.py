"""Streamlit helpers shared by the dashboard's pages: the process-wide registry and the session's
state (``state``), the sidebar (``sidebar``), live progress sections (``live``), plotly figures
(``charts``) and composite widgets (``widgets``). The engine (``distill_core``) never imports this."""
