package s3blob

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestHeadOfMetadataLimit: copyOfMeta goes with the source's metadata
// while both fit S3's 2 KB of user metadata (keys and values); past it the
// copy keeps the source's metadata as it is (COPY directive), without it.
func TestHeadOfMetadataLimit(t *testing.T) {
	const etag = "0123456789abcdef0123456789abcdef-2"
	room := maxUserMeta - len(copyOfMeta) - len(etag) - len("note")
	for _, c := range []struct {
		value  int
		fits   bool
		direct types.MetadataDirective
	}{{room, true, types.MetadataDirectiveReplace}, {room + 1, false, types.MetadataDirectiveCopy}} {
		out := &s3.HeadObjectOutput{ContentType: aws.String("text/csv"), Metadata: map[string]string{"note": strings.Repeat("x", c.value)},
			ServerSideEncryption: types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String("k1"), StorageClass: types.StorageClassStandardIa}
		h := headOf(out, etag)
		if h.noCopyOf == c.fits || (h.meta[copyOfMeta] == etag) != c.fits {
			t.Errorf("metadata of %d bytes besides the record: noCopyOf %v, meta has the record %v; want it kept %v",
				c.value+len("note"), h.noCopyOf, h.meta[copyOfMeta] == etag, c.fits)
		}
		in := h.copyInput("b", "b/in/x.csv", "arch/x.csv")
		if in.MetadataDirective != c.direct {
			t.Errorf("fits %v: directive %s, want %s", c.fits, in.MetadataDirective, c.direct)
		}
		if in.ServerSideEncryption != types.ServerSideEncryptionAwsKms || aws.ToString(in.SSEKMSKeyId) != "k1" || in.StorageClass != types.StorageClassStandardIa {
			t.Errorf("fits %v: the copy's encryption %s %q, class %s; want the source's", c.fits, in.ServerSideEncryption, aws.ToString(in.SSEKMSKeyId), in.StorageClass)
		}
		up := h.upload("b", "arch/x.csv")
		if up.StorageClass != types.StorageClassStandardIa || aws.ToString(up.SSEKMSKeyId) != "k1" || (up.Metadata[copyOfMeta] == etag) != c.fits {
			t.Errorf("fits %v: the part-by-part upload %+v lacks the source's headers", c.fits, up)
		}
	}
}
