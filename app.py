"""RecDistill dashboard: page config, navigation over app_pages/ (not pages/: that name switches Streamlit
to its legacy multipage mode, which runs a page without this file), and the sidebar every page shares."""
import streamlit as st

from ui import sidebar
from ui.widgets import APP_ICON, PAGE_ICONS

st.set_page_config(page_title="RecDistill", page_icon=APP_ICON, layout="wide")
PAGES = {"app_pages/overview.py": "Overview", "app_pages/data.py": "Data", "app_pages/teacher.py": "Teacher",
         "app_pages/distill.py": "Distill", "app_pages/recommendations.py": "Recommendations",
         "app_pages/compare.py": "Compare sizes", "app_pages/sweep.py": "Alpha × T sweep",
         "app_pages/who_gains.py": "Who gains", "app_pages/loss_lab.py": "Loss lab",
         "app_pages/history.py": "Run history"}
page = st.navigation([st.Page(path, title=title, icon=PAGE_ICONS[path], default=i == 0)
                      for i, (path, title) in enumerate(PAGES.items())])
sidebar.render()
page.run()
