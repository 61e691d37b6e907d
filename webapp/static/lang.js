// The page's language when the request named none (no Accept-Language, or one without Chinese or
// English): base.html loads this only then, and the server wrote the page in Chinese. If the
// phone's own languages put English before Chinese, load the page again with `?lang=en`, the
// page's explicit choice (its language switch does the same), before anything else runs.
(function followPhoneLanguage() {
  const languages = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || ''];
  const first = languages.map((tag) => String(tag).toLowerCase().split('-')[0]).find((tag) => tag === 'zh' || tag === 'en');
  if (first !== 'en') return;
  const url = new URL(window.location.href);
  if (url.searchParams.has('lang')) return;
  url.searchParams.set('lang', 'en');
  window.location.replace(url.href);
}());
