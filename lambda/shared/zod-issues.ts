// zod/mini carries no message catalogue: the words for its issues are ours.
import type * as z from 'zod/mini';

/** The issues of a failed zod/mini parse, in words, each prefixed with the path of the field. */
export function describeIssues(issues: readonly z.core.$ZodIssue[], root = '(payload)'): string {
  return issues
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : root}: ${describeIssue(issue)}`)
    .join('; ');
}

/** zod/mini carries no message catalogue: say what was wrong in words of our own. */
function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'unrecognized_keys':
      return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((key) => `"${key}"`).join(', ')}`;
    case 'invalid_type':
      return `expected ${issue.expected}`;
    case 'invalid_format':
      return `expected an ISO 8601 ${issue.format}`;
    case 'invalid_value':
      return `expected ${issue.values.map((value) => JSON.stringify(value)).join(' or ')}`;
    case 'too_small':
      if (issue.message !== 'Invalid input') return issue.message;
      return `must be ${issue.inclusive === false ? 'greater than' : 'at least'} ${String(issue.minimum)}`;
    case 'too_big':
      return issue.message !== 'Invalid input' ? issue.message : `must be at most ${String(issue.maximum)}`;
    default:
      return issue.message;
  }
}
