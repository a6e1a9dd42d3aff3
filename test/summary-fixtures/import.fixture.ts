// Fails while it is imported, before vitest collects any test.
throw new Error('fixture: this file fails while it is imported');
