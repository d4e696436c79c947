package dataset

import (
	"archive/zip"
	"bytes"
	"image/jpeg"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestOfficeHoldsWhatABranchOfficeServerDoes generates the office dataset
// small and checks each kind of file is what it claims to be: OOXML zips
// with their content types and main part, PDFs whose cross-reference
// offsets land on their objects, JPEGs that decode, a sparse file with
// holes, the folder of small files, and paths past 260 characters.
func TestOfficeHoldsWhatABranchOfficeServerDoes(t *testing.T) {
	const scale = 0.002
	root, st := gen(t, Office, 3, scale)
	if d := digest(t, root); d.Files != st.Files || d.Bytes != st.Bytes || d.Dirs != st.Dirs {
		t.Fatalf("stats %+v disagree with the tree %v", st, d)
	}
	byExt := map[string]int{}
	longest := 0
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		longest = max(longest, len(rel))
		ext := strings.TrimPrefix(filepath.Ext(p), ".")
		byExt[ext]++
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch ext {
		case "docx", "xlsx", "pptx":
			zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Errorf("%s is not a zip: %v", rel, err)
				return nil
			}
			names := map[string]bool{}
			for _, f := range zr.File {
				names[f.Name] = true
			}
			main := map[string]string{"docx": "word/document.xml", "xlsx": "xl/workbook.xml", "pptx": "ppt/presentation.xml"}[ext]
			if !names["[Content_Types].xml"] || !names["_rels/.rels"] || !names[main] {
				t.Errorf("%s lacks an OOXML part: %v", rel, names)
			}
		case "pdf":
			checkPDF(t, rel, b)
		case "jpg":
			if _, err := jpeg.Decode(bytes.NewReader(b)); err != nil {
				t.Errorf("%s does not decode as a JPEG: %v", rel, err)
			}
		case "eml":
			if len(b) < 1<<10 || len(b) > 4<<10 {
				t.Errorf("%s is %d bytes, want 1-4 KiB", rel, len(b))
			}
		case "img":
			if used, ok := allocated(p); ok && used >= int64(len(b)) {
				t.Errorf("%s is not sparse: %d bytes take %d on disk", rel, len(b), used)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{"docx", "xlsx", "pptx", "pdf", "jpg", "txt", "csv"} {
		if byExt[ext] == 0 {
			t.Errorf("no .%s file: %v", ext, byExt)
		}
	}
	if want := int(OfficeSmallFiles * scale); byExt["eml"] != want || byExt["img"] != 1 {
		t.Errorf("%d small files and %d images, want %d and 1", byExt["eml"], byExt["img"], want)
	}
	if longest <= 260 {
		t.Errorf("the longest path is %d characters, want past 260", longest)
	}
	a, b := digest(t, root), digest(t, func() string { r, _ := gen(t, Office, 3, scale); return r }())
	if !a.Equal(b) {
		t.Error("the same seed gave different office trees")
	}
}

var pdfObj = regexp.MustCompile(`(?m)^([0-9]{10}) 00000 n $`)

func checkPDF(t *testing.T, rel string, b []byte) {
	t.Helper()
	if !bytes.HasPrefix(b, []byte("%PDF-1.7\n")) || !bytes.HasSuffix(b, []byte("%%EOF\n")) {
		t.Errorf("%s lacks the PDF header or trailer", rel)
		return
	}
	for i, m := range pdfObj.FindAllSubmatch(b, -1) {
		off, _ := strconv.Atoi(string(m[1]))
		if !bytes.HasPrefix(b[off:], []byte(strconv.Itoa(i+1)+" 0 obj\n")) {
			t.Errorf("%s: xref entry %d points at %q", rel, i+1, b[off:min(len(b), off+12)])
			return
		}
	}
}
