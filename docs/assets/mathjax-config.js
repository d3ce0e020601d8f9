// MathJax 3. On the Markdown pages pymdownx.arithmatex (generic mode) has already turned $...$ and $$...$$
// into \( \) and \[ \]; the tutorial notebook's cells keep $ and $$ as written, so both are delimiters.
// Code and pre blocks are never typeset (MathJax's skipHtmlTags).
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: { ignoreHtmlClass: "tex2jax_ignore", processHtmlClass: "tex2jax_process|arithmatex" },
};
// Material's instant navigation swaps pages without a reload: typeset each new page.
if (typeof document$ !== "undefined") {
  document$.subscribe(() => { if (window.MathJax && MathJax.typesetPromise) MathJax.typesetPromise(); });
}
