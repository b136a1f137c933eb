"""RecDistill dashboard: page config, navigation over app_pages/ (not pages/: that name switches Streamlit
to its legacy multipage mode, which runs a page without this file), and the sidebar every page shares."""
import streamlit as st

from ui import sidebar

st.set_page_config(page_title="RecDistill", page_icon="🧪", layout="wide")
page = st.navigation([
    st.Page("app_pages/overview.py", title="Overview", icon="🏠", default=True),
    st.Page("app_pages/data.py", title="Data", icon="🗂️"),
    st.Page("app_pages/teacher.py", title="Teacher", icon="🎓"),
    st.Page("app_pages/distill.py", title="Distill", icon="⚗️"),
    st.Page("app_pages/recommendations.py", title="Recommendations", icon="📋"),
    st.Page("app_pages/compare.py", title="Compare sizes", icon="📏"),
    st.Page("app_pages/sweep.py", title="Alpha × T sweep", icon="🧭"),
    st.Page("app_pages/loss_lab.py", title="Loss lab", icon="🧮"),
    st.Page("app_pages/history.py", title="Run history", icon="🗃️"),
])
sidebar.render()
page.run()
