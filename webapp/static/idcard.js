// The standalone form's ID number field: a numeric keypad, and a key for the final X that keypad
// lacks (Chinese ID numbers end in a digit or X). Both come together: without this script the
// field keeps the full keyboard, so the X can always be typed. The field keeps the focus when
// the key is tapped, so the keypad stays open.

const field = document.getElementById('idcard');
const key = document.getElementById('x-key');
const hint = document.getElementById('idcard-hint');

if (field && key) {
  field.inputMode = 'numeric';
  key.hidden = false;
  if (hint) {
    hint.hidden = false;
    const described = field.getAttribute('aria-describedby');
    field.setAttribute('aria-describedby', described ? `${described} ${hint.id}` : hint.id);
  }
  key.addEventListener('pointerdown', (event) => event.preventDefault());  // the field keeps the focus
  key.addEventListener('click', () => {
    const start = field.selectionStart ?? field.value.length;
    const end = field.selectionEnd ?? start;
    field.setRangeText('X', start, end, 'end');
    field.dispatchEvent(new Event('input', { bubbles: true }));
    field.focus();
  });
}
