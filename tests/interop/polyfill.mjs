// js-libp2p 2.10 calls Promise.withResolvers (ES2024), which Node 20 lacks.
// Imported first by every entry point, before any libp2p module is evaluated.
if (typeof Promise.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers () {
      let resolve
      let reject
      const promise = new this((res, rej) => { resolve = res; reject = rej })
      return { promise, resolve, reject }
    }
  })
}
