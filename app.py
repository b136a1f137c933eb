"""RecDistill dashboard: page config and navigation only (the pages live in pages/)."""
import streamlit as st

st.set_page_config(page_title="RecDistill", page_icon="🧪", layout="wide")
st.title("RecDistill")
st.write("Knowledge distillation for recommender systems. The dashboard pages are on their way.")
