/** A kernel worker that cannot start (as when a worker inherits flags it cannot run with). */
throw new Error('forced start-up failure');
