// What a failed call says, in one line: Connect's code name, the message, and what the error
// details add (the ErrorInfo's reason, the BadRequest's fields).

import { Code, ConnectError } from "@connectrpc/connect";

import { BadRequestSchema, ErrorInfoSchema } from "../gen/ts/google/rpc/error_details_pb.js";

/** `invalid_argument`: Connect's name of a code. */
export function codeName(code) {
  return (Code[code] ?? "unknown").replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase());
}

/** `already_exists: another user has … (EMAIL_TAKEN). user.email: is already used …` */
export function describe(error) {
  const failure = ConnectError.from(error);
  let text = `${codeName(failure.code)}: ${failure.rawMessage}`;
  const reasons = failure.findDetails(ErrorInfoSchema).map((info) => info.reason);
  const fields = failure
    .findDetails(BadRequestSchema)
    .flatMap((bad) => bad.fieldViolations.map((v) => `${v.field}: ${v.description}`));
  if (reasons.length) {
    text += ` (${reasons.join(", ")})`;
  }
  if (fields.length) {
    text += `. ${fields.join("; ")}`;
  }
  return text;
}

/** The call was abandoned here (its AbortSignal), not refused. */
export function cancelled(error) {
  return ConnectError.from(error).code === Code.Canceled;
}
