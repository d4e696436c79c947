// A basic accessibility check of the page as it is now: it returns a list
// of problems, empty when none. It checks what a keyboard or screen-reader
// user trips over first: the language and title, one h1 and headings that
// do not skip levels, a label for every form control, alt text on images,
// a name for every link and button, controls that the Tab key reaches, no
// positive tabindex, header cells in tables, and unique ids (labels and
// descriptions point at ids).
(() => {
  const problems = [];
  const short = el => el.outerHTML.replace(/\s+/g, ' ').slice(0, 100);
  const visible = el => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  const byIds = ids => (ids || '').split(/\s+/).filter(Boolean).map(id => (document.getElementById(id) || {}).textContent || '').join(' ');
  const name = el => (el.getAttribute('aria-label') || byIds(el.getAttribute('aria-labelledby')) || el.textContent ||
    el.getAttribute('title') || el.getAttribute('alt') || (el.tagName === 'INPUT' ? el.value : '') ||
    [...el.querySelectorAll('img[alt]')].map(i => i.alt).join(' ')).trim();

  if (!document.documentElement.lang) problems.push('the html element has no lang');
  if (!document.title.trim()) problems.push('the page has no title');

  const headings = [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')].filter(visible);
  const h1s = headings.filter(h => h.tagName === 'H1');
  if (h1s.length !== 1) problems.push(h1s.length + ' visible h1 headings; want exactly 1');
  let last = 0;
  for (const h of headings) {
    const level = Number(h.tagName[1]);
    if (!h.textContent.trim()) problems.push('empty heading: ' + short(h));
    if (last && level > last + 1) problems.push('heading levels skip from h' + last + ' to h' + level + ': ' + h.textContent.trim());
    last = level;
  }

  for (const img of document.querySelectorAll('img')) {
    if (!img.hasAttribute('alt')) problems.push('image without alt: ' + short(img));
  }
  for (const el of document.querySelectorAll('[role=img]')) {
    if (!name(el)) problems.push('role=img without a name: ' + short(el));
  }

  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    if (!visible(el)) continue;
    const labelled = el.getAttribute('aria-label') || byIds(el.getAttribute('aria-labelledby')).trim() ||
      (el.id && [...document.querySelectorAll('label')].some(l => l.htmlFor === el.id && l.textContent.trim())) || el.closest('label');
    if (!labelled) problems.push('form control without a label: ' + short(el));
    for (const id of (el.getAttribute('aria-describedby') || '').split(/\s+/).filter(Boolean)) {
      if (!document.getElementById(id)) problems.push('aria-describedby names a missing id ' + id + ': ' + short(el));
    }
  }

  for (const el of document.querySelectorAll('a, button, summary, [role=button], [role=link]')) {
    if (!visible(el)) continue;
    if (!name(el)) problems.push('link or button without an accessible name: ' + short(el));
    if (el.tagName === 'A' && !el.hasAttribute('href')) problems.push('link without href (the Tab key skips it): ' + short(el));
    if (el.tabIndex < 0 && !el.disabled) problems.push('control taken out of the tab order: ' + short(el));
    if (!['A', 'BUTTON', 'SUMMARY'].includes(el.tagName) && el.tabIndex < 0) problems.push('a role=button or role=link the keyboard cannot reach: ' + short(el));
  }
  for (const el of document.querySelectorAll('[tabindex]')) {
    if (el.tabIndex > 0) problems.push('positive tabindex changes the tab order: ' + short(el));
  }
  for (const el of document.querySelectorAll('progress, meter')) {
    if (visible(el) && !name(el) && !(el.id && document.querySelector('label[for="' + el.id + '"]'))) problems.push('progress without a label: ' + short(el));
  }

  for (const t of document.querySelectorAll('table')) {
    if (!t.querySelector('th')) problems.push('table without header cells: ' + short(t));
  }
  const seen = new Set();
  for (const el of document.querySelectorAll('[id]')) {
    if (seen.has(el.id)) problems.push('duplicate id ' + el.id);
    seen.add(el.id);
  }
  return problems;
})()
