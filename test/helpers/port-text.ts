/**
 * A port list as text, each run of consecutive ports as a range: `[1, 2, 3, 5, 5]` is "1-3,5,5".
 * Two lists give the same text exactly when they are equal, order and repeats included: a
 * positive integer reads back one way, anything else in the list is written as JSON after a `?`
 * (so the string "22" is not the port 22), and a value that is not an array says so. Comparing
 * the texts of lists of tens of thousands of ports costs a fraction of a deep `toEqual` over the
 * arrays, and a failure's diff stays short.
 */
export function portText(ports: unknown): string {
  if (!Array.isArray(ports)) return `not a list: ${JSON.stringify(ports)}`;
  const port = (p: unknown): p is number => typeof p === 'number' && Number.isSafeInteger(p) && p > 0;
  const parts: string[] = [];
  for (let i = 0; i < ports.length;) {
    const first: unknown = ports[i];
    if (!port(first)) {
      parts.push(`?${JSON.stringify(first)}`);
      i++;
      continue;
    }
    let j = i;
    while (j + 1 < ports.length && ports[j + 1] === ports[j] + 1) j++;
    parts.push(j === i ? `${first}` : `${first}-${ports[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}
