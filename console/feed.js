// The live order feed: list, then watch from the listing's revision + 1 (no gap, no
// duplicate), over one stream at a time.
//
// A browser opens at most six HTTP/1.1 connections per host and a stream holds one for as long
// as it lasts, so the feed never holds two: following another filter aborts the stream first,
// and a paused feed (the page hidden) holds none, resuming from the last revision it applied.
// A stream that ends or fails for a passing reason is resumed after a backoff; one refused for
// good (no token, no right) stops the feed until it is followed again.

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

import { WatchOrdersRequestSchema } from "../gen/ts/shop/order/v1/order_pb.js";
import { cancelled, describe } from "./errors.js";

const MAX_BACKOFF_MS = 30_000;
// Worth another try later; any other error stops the feed.
const TRANSIENT = new Set([
  Code.Unavailable,
  Code.Unknown,
  Code.Internal,
  Code.DeadlineExceeded,
  Code.ResourceExhausted,
  Code.Aborted,
]);
// How the order service refuses a user it has not learnt of yet (from the user feed,
// milliseconds after CreateUser), and then no longer.
const NEW_USER_LAG = new Set([Code.FailedPrecondition, Code.PermissionDenied]);
const NEW_USER_PATIENCE_MS = 10_000;

/** Exponential backoff with full jitter, as the services' own watchers do. */
function backoff(failures) {
  return Math.random() * Math.min(MAX_BACKOFF_MS, 250 * 2 ** failures);
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

export class OrderFeed {
  #orders;
  #list;
  #apply;
  #show;
  #controller = null; // of the one stream (or listing) in flight
  #wanted = false; // followed, and not stopped by the page (a pause keeps it wanted)
  #userId = "";
  #revision = 0n; // the last one applied, listed or watched
  #listed = false; // the listing for #userId is shown, at #revision
  #stopped = false; // refused for good: only following again restarts it
  #patientUntil = 0;

  /**
   * @param {object} options
   * @param {object} options.orders an OrderService client
   * @param {(userId: string, signal: AbortSignal) => Promise<bigint>} options.list shows the
   *   listing of `userId`'s orders ("": every order the caller may see); its revision
   * @param {(response: object) => void} options.apply shows a WatchOrdersResponse's events
   * @param {(text: string) => void} options.show says how the feed is
   */
  constructor({ orders, list, apply, show }) {
    this.#orders = orders;
    this.#list = list;
    this.#apply = apply;
    this.#show = show;
  }

  /** Lists `userId`'s orders ("": all the caller may see), then follows them. */
  follow(userId) {
    this.#userId = userId;
    this.#listed = false;
    this.#wanted = true;
    this.#start();
  }

  /** Ends the stream, and nothing resumes it but `follow`. */
  stop(text = "Not connected.") {
    this.#wanted = false;
    this.#abort();
    this.#show(text);
  }

  /** Ends the stream until `resume()`, which goes on from the last revision applied. */
  pause() {
    if (this.#controller && !this.#stopped) {
      this.#abort();
      this.#show("Paused while the page is hidden.");
    }
  }

  resume() {
    if (this.#wanted && !this.#controller && !this.#stopped) {
      this.#start();
    }
  }

  /** The caller just created a user: a feed refused for want of one is tried again. */
  userCreated() {
    this.#patientUntil = Date.now() + NEW_USER_PATIENCE_MS;
    if (this.#wanted && this.#stopped) {
      this.follow(this.#userId);
    }
  }

  #abort() {
    this.#controller?.abort();
    this.#controller = null;
  }

  #start() {
    this.#abort();
    this.#stopped = false;
    const controller = new AbortController();
    this.#controller = controller;
    this.#run(controller.signal);
  }

  async #run(signal) {
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (!this.#listed) {
          this.#show("Listing orders…");
          this.#revision = await this.#list(this.#userId, signal);
          this.#listed = true;
        }
        await this.#watch(signal, () => {
          failures = 0;
        });
        // Ended without an error (a server going away ends it so): resume where it stopped.
        failures += 1;
        this.#show("The feed ended; reconnecting…");
        await sleep(backoff(failures), signal);
      } catch (error) {
        if (signal.aborted || cancelled(error)) {
          return;
        }
        const failure = ConnectError.from(error);
        if (failure.code === Code.OutOfRange) {
          this.#listed = false; // history that far back is compacted: list again
          continue;
        }
        if (NEW_USER_LAG.has(failure.code) && Date.now() < this.#patientUntil) {
          this.#show("Waiting for the order service to learn of the new user…");
          await sleep(backoff(1), signal);
          continue;
        }
        if (!TRANSIENT.has(failure.code)) {
          this.#stopped = true;
          this.#show(`Stopped: ${describe(failure)}`);
          return;
        }
        failures += 1;
        const wait = backoff(failures);
        this.#show(`Disconnected (${describe(failure)}); retrying in ${Math.ceil(wait / 1000)} s…`);
        await sleep(wait, signal);
      }
    }
  }

  async #watch(signal, received) {
    const request = create(WatchOrdersRequestSchema, {
      startRevision: this.#revision + 1n,
      userId: this.#userId,
      progressNotify: true,
    });
    for await (const response of this.#orders.watchOrders(request, { signal })) {
      if (response.compactRevision) {
        this.#listed = false; // OUT_OF_RANGE follows
      }
      this.#apply(response);
      for (const event of response.events) {
        this.#revision = event.revision;
      }
      // A bookmark: nothing else up to it concerns this watch.
      if (response.progressNotify && response.headerRevision > this.#revision) {
        this.#revision = response.headerRevision;
      }
      received();
      this.#show(`Live: up to revision ${this.#revision}.`);
    }
  }
}
