"""Streamlit helpers shared by the dashboard's pages: what the process shares (``registry``), what one
session keeps (``session``), the session's background jobs (``jobs``), the sidebar (``sidebar``), live progress
sections (``live``), plotly figures (``charts``) and composite widgets (``widgets``). The engine
(``distill_core``) never imports this."""
