/**
 * Words for what is wrong with a job: zod's issues, said as a producer can act on them (`subject: required`,
 * `transport: must be one of "smtp", "ses", not "fax"`, `unknown key "transprt" (did you mean "transport"?)`).
 * Rules with a message of their own keep it; this covers zod's generic codes, one entry per code.
 */

/** The part of a zod raw issue (as an error map sees it) that the wording reads. */
export type RawIssue = {
  code?: string;
  input?: unknown;
  expected?: string;
  values?: readonly unknown[];
  keys?: readonly string[];
  origin?: string;
  minimum?: number | bigint;
  maximum?: number | bigint;
  errors?: ReadonlyArray<ReadonlyArray<{ code?: string; path?: readonly PropertyKey[]; message: string }>>;
  issues?: ReadonlyArray<{ message: string }>;
  inst?: unknown;
};

/** Most problems one report lists; a hostile job could carry thousands. */
const MAX_PROBLEMS = 20;
const MAX_SHOWN_VALUE = 40;

const KINDS: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  boolean: 'true or false',
  object: 'an object',
  array: 'a list',
  bigint: 'a number',
  int: 'a whole number',
  null: 'null',
};

const kindOf = (value: unknown): string =>
  value === null ? 'null' : Array.isArray(value) ? 'a list' : (KINDS[typeof value] ?? typeof value);

const show = (value: unknown): string => {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > MAX_SHOWN_VALUE ? `${text.slice(0, MAX_SHOWN_VALUE)}…` : text;
};

/** Edit distance, bounded: keys are short (at most a few dozen characters are compared). */
function distance(a: string, b: string): number {
  if (a.length > 64 || b.length > 64) return Number.POSITIVE_INFINITY;
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1]?.toLowerCase() === b[j - 1]?.toLowerCase() ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? Number.POSITIVE_INFINITY;
}

/** The known key closest to a misspelt one, if it is close enough to be what was meant. */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  let best: { key: string; distance: number } | undefined;
  for (const candidate of known) {
    const d = distance(key, candidate);
    if (!best || d < best.distance) best = { key: candidate, distance: d };
  }
  return best && best.distance <= Math.max(2, Math.floor(best.key.length / 3)) ? best.key : undefined;
}

/** The keys an object schema knows, from the schema that raised the issue. */
const knownKeysOf = (inst: unknown): string[] =>
  Object.keys((inst as { _zod?: { def?: { shape?: object } } })?._zod?.def?.shape ?? {});

const unknownKeys = (issue: RawIssue): string => {
  const known = knownKeysOf(issue.inst);
  const keys = (issue.keys ?? []).map((key) => {
    const near = nearestKey(key, known);
    return `"${key}"${near ? ` (did you mean "${near}"?)` : ''}`;
  });
  const allowed =
    known.length > 0 && keys.every((k) => !k.includes('did you mean')) ? ` (known keys: ${known.join(', ')})` : '';
  return `unknown key${keys.length > 1 ? 's' : ''} ${keys.join(', ')}${allowed}`;
};

const sizeUnit = (origin: string | undefined, n: number | bigint) =>
  origin === 'string'
    ? `${n} character${n === 1 ? '' : 's'}`
    : origin === 'array' || origin === 'set'
      ? `${n} item${n === 1 ? '' : 's'}`
      : `${n}`;

/**
 * The union's alternative that matches the input's type says what is wrong with it: every problem, a nested one
 * after its path within the value, the value's own first (`unknown key "adress" (did you mean "address"?), address:
 * required`).
 */
const unionProblem = (issue: RawIssue): string => {
  const alternatives = issue.errors ?? [];
  const typed = alternatives.find(
    (problems) =>
      problems.length > 0 && !problems.every((p) => p.code === 'invalid_type' && (p.path?.length ?? 0) === 0),
  );
  if (typed?.[0])
    return [...typed]
      .sort((a, b) => (a.path?.length ?? 0) - (b.path?.length ?? 0))
      .map((p) => (p.path?.length ? `${p.path.map(String).join('.')}: ${p.message}` : p.message))
      .join(', ');
  const expected = alternatives
    .flatMap((problems) => problems.map((p) => /must be (.+?), not /.exec(p.message)?.[1] ?? ''))
    .filter(Boolean);
  return `must be ${[...new Set(expected)].join(' or ') || 'another kind of value'}, not ${kindOf(issue.input)}`;
};

/** One entry per zod issue code; a rule that has a message of its own never reaches here. */
const WORDING: Record<string, (issue: RawIssue) => string> = {
  invalid_type: (issue) =>
    issue.input === undefined
      ? 'required'
      : `must be ${KINDS[issue.expected ?? ''] ?? issue.expected}, not ${kindOf(issue.input)}`,
  invalid_value: (issue) => {
    const values = issue.values ?? [];
    const allowed = values.length === 1 ? show(values[0]) : `one of ${values.map(show).join(', ')}`;
    return `must be ${allowed}, not ${show(issue.input)}`;
  },
  unrecognized_keys: unknownKeys,
  too_small: (issue) =>
    issue.origin === 'string' && Number(issue.minimum) === 1
      ? 'must not be empty'
      : `must be at least ${sizeUnit(issue.origin, issue.minimum ?? 0)}`,
  too_big: (issue) => `must be at most ${sizeUnit(issue.origin, issue.maximum ?? 0)}`,
  invalid_format: () => 'has the wrong format',
  invalid_union: unionProblem,
  invalid_key: (issue) => issue.issues?.[0]?.message ?? 'not an allowed key',
  invalid_element: (issue) => issue.issues?.[0]?.message ?? 'not an allowed value',
};

/**
 * A zod error map (per parse: `schema.safeParse(input, { error: toJobProblem })`, or as `customError` in z.config):
 * the words for a generic issue; undefined leaves it to the next map.
 */
export function toJobProblem(issue: RawIssue): string | undefined {
  return issue.code ? WORDING[issue.code]?.(issue) : undefined;
}

/**
 * Every problem of a job in one line, each after its path: `subject: required; to.0: must be a bare address …`.
 * Problems of the job as a whole (an unknown top-level key) have no path.
 */
export function describeIssues(issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }>): string {
  const lines = issues
    .slice(0, MAX_PROBLEMS)
    .map((issue) => (issue.path.length > 0 ? `${issue.path.map(String).join('.')}: ${issue.message}` : issue.message));
  if (issues.length > MAX_PROBLEMS) lines.push(`and ${issues.length - MAX_PROBLEMS} more`);
  return lines.join('; ');
}
