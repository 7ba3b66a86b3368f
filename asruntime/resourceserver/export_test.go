package resourceserver

import "k8s.io/utils/lru"

// SetIntrospectionCacheSizes gives the verifier empty introspection caches
// of the given sizes, so tests can fill them with a few tokens.
func SetIntrospectionCacheSizes(v *Verifier, active, inactive int) {
	v.introspection.active, v.introspection.inactive = lru.New(active), lru.New(inactive)
}
