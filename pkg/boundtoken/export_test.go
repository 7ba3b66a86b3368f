package boundtoken

// RefreshTokenOf is the refresh token a Source holds, for the tests that
// replay it as a thief would.
func RefreshTokenOf(s *Source) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshToken
}
