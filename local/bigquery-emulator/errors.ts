/**
 * Errors shaped like BigQuery's v2 REST errors:
 * `{error: {code, message, errors: [{reason, message, domain}], status}}`
 * (https://cloud.google.com/bigquery/docs/error-messages lists the reasons and their HTTP codes).
 */
export type ErrorReason =
  'notFound' | 'duplicate' | 'invalid' | 'invalidQuery' | 'resourceInUse' | 'badRequest' | 'notImplemented';

const HTTP_BY_REASON: Record<ErrorReason, { code: number; status: string }> = {
  notFound: { code: 404, status: 'NOT_FOUND' },
  duplicate: { code: 409, status: 'ALREADY_EXISTS' },
  invalid: { code: 400, status: 'INVALID_ARGUMENT' },
  invalidQuery: { code: 400, status: 'INVALID_ARGUMENT' },
  resourceInUse: { code: 400, status: 'FAILED_PRECONDITION' },
  badRequest: { code: 400, status: 'INVALID_ARGUMENT' },
  notImplemented: { code: 501, status: 'UNIMPLEMENTED' },
};

export class ApiError extends Error {
  readonly httpCode: number;
  readonly status: string;
  constructor(
    readonly reason: ErrorReason,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
    this.httpCode = HTTP_BY_REASON[reason].code;
    this.status = HTTP_BY_REASON[reason].status;
  }

  toBody(): object {
    return {
      error: {
        code: this.httpCode,
        message: this.message,
        errors: [{ message: this.message, domain: 'global', reason: this.reason }],
        status: this.status,
      },
    };
  }
}

export const notFound = (what: string): ApiError => new ApiError('notFound', `Not found: ${what}`);
export const alreadyExists = (what: string): ApiError => new ApiError('duplicate', `Already Exists: ${what}`);
export const invalid = (message: string): ApiError => new ApiError('invalid', message);
