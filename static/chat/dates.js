// How the message area shows time: a short time on a message, the full date and time on
// hover, and day separators ("Today", "Yesterday", "Monday 30 November", with the year
// when it is not this year). All in the reader's time zone and language.

const short = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });
const dayThisYear = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long" });
const dayOtherYear = new Intl.DateTimeFormat(undefined, {
  weekday: "long",
  day: "numeric",
  month: "long",
  year: "numeric",
});

/** "2026-12-06" for the reader's local day of `date`: equal keys, same day. */
export function dayKey(date) {
  return `${date.getFullYear()}-${date.getMonth() + 1}-${date.getDate()}`;
}

export function shortTime(date) {
  return short.format(date);
}

export function fullTime(date) {
  return full.format(date);
}

/** The label of a day separator. */
export function dayLabel(date, now = new Date()) {
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (dayKey(date) === dayKey(now)) return "Today";
  if (dayKey(date) === dayKey(yesterday)) return "Yesterday";
  return (date.getFullYear() === now.getFullYear() ? dayThisYear : dayOtherYear).format(date);
}
