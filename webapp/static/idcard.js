// The standalone form's ID number field opens a numeric keypad; this key types the final X that
// keypad lacks (Chinese ID numbers end in a digit or X). The field keeps the focus, so the
// keypad stays open.

const field = document.getElementById('idcard');
const key = document.getElementById('x-key');

if (field && key) {
  key.hidden = false;
  key.addEventListener('pointerdown', (event) => event.preventDefault());  // the field keeps the focus
  key.addEventListener('click', () => {
    const start = field.selectionStart ?? field.value.length;
    const end = field.selectionEnd ?? start;
    field.setRangeText('X', start, end, 'end');
    field.dispatchEvent(new Event('input', { bubbles: true }));
    field.focus();
  });
}
