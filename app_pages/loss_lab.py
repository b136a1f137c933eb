"""Loss lab: CE, KL and the KD loss for one small example, what T does to it, and why KL is scaled by T²."""
import plotly.express as px
import streamlit as st

from distill_core import ConfigError
from distill_core.losslab import (GRAD_PLAIN, GRAD_SCALED, LOGITS, PROBABILITIES, TEXTBOOK_ALPHA, TEXTBOOK_P,
                                  TEXTBOOK_Q, grad_norms, loglog_slope, loss_lab, parse_vector, per_class_frame,
                                  softened_frame)


TEXTBOOK = {"loss_lab_mode": PROBABILITIES, "loss_lab_p": ", ".join(map(str, TEXTBOOK_P)),
            "loss_lab_q": ", ".join(map(str, TEXTBOOK_Q)), "loss_lab_alpha": TEXTBOOK_ALPHA, "loss_lab_y": 2}
# Defaults go through session_state (not value=) so that the preset button may overwrite them.
for k, v in {**TEXTBOOK, "loss_lab_t": "3, 1.5, 4, 0.5", "loss_lab_s": "2, 2, 2.5, 1", "loss_lab_T": 2.0}.items():
    st.session_state.setdefault(k, v)


def _textbook() -> None:
    st.session_state.update(TEXTBOOK)


st.title("Loss lab")
st.caption("The distillation loss for one example over a few classes: a teacher distribution p, a student "
           "distribution q, and alpha, the weight of the cross-entropy. All values are in nats (natural log).")

c = st.columns([2, 1])
mode = c[0].radio("Enter", (PROBABILITIES, LOGITS), key="loss_lab_mode", horizontal=True, persist_state="session",
                  format_func={PROBABILITIES: "probabilities p and q", LOGITS: "logits and a temperature T"}.get,
                  help="Probabilities are used as they are (T = 1); logits t and s are softened as "
                       "p_T = softmax(t / T) and q_T = softmax(s / T).")
c[1].button("Load the textbook example", key="loss_lab_preset", on_click=_textbook,
            help="p = [0.1, 0.3, 0.4, 0.1], q = [0.2, 0.35, 0.3, 0.15], alpha = 0.7 (note: this p sums to 0.9); "
                 "the hard label is set to y = 2, the teacher's top class.")
c = st.columns([3, 3, 1, 1, 1])
if mode == PROBABILITIES:
    t_text = c[0].text_input("Teacher p", key="loss_lab_p", persist_state="session",
                             help="The teacher's probability per class, separated by commas (>= 0).")
    s_text = c[1].text_input("Student q", key="loss_lab_q", persist_state="session",
                             help="The student's probability per class, as many as p.")
else:
    t_text = c[0].text_input("Teacher logits t", key="loss_lab_t", persist_state="session",
                             help="The teacher's raw scores per class, separated by commas.")
    s_text = c[1].text_input("Student logits s", key="loss_lab_s", persist_state="session",
                             help="The student's raw scores per class, as many as t.")
alpha = c[2].number_input("alpha", step=0.05, key="loss_lab_alpha", persist_state="session",
                          help="Weight of the CE term, in [0, 1]; the KL term gets 1 − alpha.")
label = c[3].number_input("Hard label y", step=1, key="loss_lab_y", persist_state="session",
                          help="The class actually observed (index from 0); only the training form's CE reads it.")
temperature = c[4].number_input("T", step=0.5, key="loss_lab_T", persist_state="session",
                                disabled=mode == PROBABILITIES,
                                help="Temperature of the KL term (logits only; probabilities are used at T = 1).")
try:
    names = ("teacher p", "student q") if mode == PROBABILITIES else ("teacher logits t", "student logits s")
    res = loss_lab(mode, parse_vector(names[0], t_text), parse_vector(names[1], s_text), alpha, label, temperature)
except ConfigError as e:
    st.error(f"Cannot compute the loss: {e}.")
    st.stop()
b, chk, T = res.textbook, res.check, res.temperature

st.subheader("The loss, term by term")
st.markdown("**Two cross-entropies.** The textbook form (and `python -m distill_core loss`) takes the CE between "
            "the two distributions, CE(p, q). RecDistill trains with the CE against the hard label y instead, "
            "CE(y, q₁), computed on the student at T = 1; its soft term is the same KL, scaled by T².")
st.latex(r"\mathrm{CE}(p,q) = -\sum_c p_c \log q_c \qquad \mathrm{KL}(p\,\|\,q) = \sum_c p_c \log\frac{p_c}{q_c}"
         r" = \mathrm{CE}(p,q) - H(p)")
st.latex(rf"\begin{{aligned}} L_\text{{textbook}} &= \alpha\,\mathrm{{CE}}(p,q) + (1-\alpha)\,\mathrm{{KL}}(p\,\|\,q)"
         rf" = {alpha:g}\cdot {b.ce:.4f} + {1 - alpha:g}\cdot {b.kl:.4f} = {b.total:.4f} \\"
         rf" L_\text{{train}} &= \alpha\,(-\log q_{{1,y}}) + (1-\alpha)\,T^2\,\mathrm{{KL}}(p_T\,\|\,q_T) \\"
         rf" &= {alpha:g}\cdot {res.hard_ce:.4f} + {1 - alpha:g}\cdot {T:g}^2\cdot {b.kl:.4f} = {res.kd_total:.4f}"
         r" \end{aligned}")
if chk is not None and chk.as_written is not None:
    w = chk.as_written
    st.warning(f"p sums to {chk.sum_p:g} and q to {chk.sum_q:g}: a vector that does not sum to 1 is not a probability "
               f"distribution. Taken as written, the formulas give CE {w.ce:.4f}, KL {w.kl:.4f}"
               f"{' (impossible: a KL divergence is never negative)' if w.kl < 0 else ''} and total {w.total:.4f}. "
               f"The correct values divide each vector by its sum first: "
               f"CE {b.ce:.4f}, KL {b.kl:.4f}, total {b.total:.4f}.")
    st.dataframe([{"reading": "as written (wrong)", "CE(p, q)": w.ce, "KL(p ‖ q)": w.kl, "total": w.total},
                  {"reading": "normalised p / sum (correct ✓)", "CE(p, q)": b.ce, "KL(p ‖ q)": b.kl,
                   "total": b.total}], key="loss_lab_readings", hide_index=True)
m = st.columns(5)
m[0].metric("CE(p, q)", f"{b.ce:.4f}")
m[1].metric("KL(p ‖ q)", f"{b.kl:.4f}")
m[2].metric("Total (textbook)", f"{b.total:.4f}")
m[3].metric("CE(y, q₁)", f"{res.hard_ce:.4f}")
m[4].metric("Total (training)", f"{res.kd_total:.4f}")
fig = px.bar(per_class_frame(res), x="class", y="nats", color="term", barmode="group")
fig.update_layout(title="Each term's contribution per class (the bars of a term sum to it)",
                  xaxis_title="class c (index)", yaxis_title="contribution (nats)", xaxis_dtick=1)
st.plotly_chart(fig, key="loss_lab_per_class")

st.subheader("Softening with T")
if res.teacher_logits is None:
    st.info(" ".join(res.notes))
    st.stop()
view_t = st.slider("T for this view", 0.25, 20.0, 2.0, 0.25, key="loss_lab_view_T", persist_state="session",
                   help="Both distributions are redrawn as softmax(logits / T); with probabilities the logits "
                        "are log p and log q. T = 1 gives them back; a large T flattens both towards uniform.")
fig = px.bar(softened_frame(res.teacher_logits, res.student_logits, view_t), x="class", y="probability",
             color="model", barmode="group")
fig.update_layout(title=f"softmax(logits / T) at T = {view_t:g}", xaxis_title="class c (index)",
                  yaxis_title="probability (0–1)", xaxis_dtick=1, yaxis_range=[0, 1])
st.plotly_chart(fig, key="loss_lab_softened")

st.subheader("Why KL is multiplied by T²")
st.markdown("The gradient of the softened term with respect to the student's logits is (q_T − p_T) / T, and "
            "q_T − p_T itself shrinks as 1/T once T is large: without a correction the soft term's pull falls "
            "as 1/T², and raising T would silently hand the loss to the CE term. Multiplying by T² cancels it "
            "(Hinton et al., 2015). Below: the gradient norm for the logits above, by torch autograd.")
st.latex(r"\frac{\partial}{\partial s}\,\mathrm{KL}(p_T\,\|\,q_T) = \frac{q_T - p_T}{T} \;\approx\; "
         r"\frac{(s - t) - \overline{(s - t)}}{n\,T^2}\quad (T \gg |s|, |t|)")
grads = grad_norms(res.teacher_logits, res.student_logits)
if grads["grad_norm"].max() <= 1e-12:
    st.info("The student's logits equal the teacher's up to a constant: q_T = p_T and the gradient is 0 at every T.")
    st.stop()
fig = px.line(grads, x="T", y="grad_norm", color="term", log_x=True, log_y=True)
fig.add_vline(x=view_t, line_dash="dot", annotation_text=f"T = {view_t:g}")
fig.update_layout(title="Gradient size of the soft term vs T", xaxis_title="temperature T (log scale)",
                  yaxis_title="‖∂ term / ∂ s‖₂ (nats per logit, log scale)")
st.plotly_chart(fig, key="loss_lab_grad")
slopes = [round(loglog_slope(grads, term), 2) + 0.0 for term in (GRAD_PLAIN, GRAD_SCALED)]  # + 0.0: no "-0.00"
st.caption(f"From T = 10 to 100 the gradient without the factor goes as T^{slopes[0]:.2f}; with T² as "
           f"T^{slopes[1]:.2f}: the factor keeps the soft term's pull about the same size at every T.")
